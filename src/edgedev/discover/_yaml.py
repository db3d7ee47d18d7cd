"""The documents of ``edgedev discover`` as YAML text, with no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
"""libyaml's safe dumper where PyYAML has it: ten thousand properties in well under a second."""


def documents_yaml(documents: Sequence[dict[str, Any]], comment: Sequence[str] = ()) -> str:
    """``documents`` as one multi-document YAML text, after ``comment`` lines (``# ...``).

    Keys keep their order; long values stay on one line; text outside ASCII is written as
    it is (the file is UTF-8).
    """
    head = "".join(f"# {line}\n" for line in comment)
    body = yaml.dump_all(
        documents,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=None,
        allow_unicode=True,
        width=4096,
        explicit_start=True,
    )
    return head + body
