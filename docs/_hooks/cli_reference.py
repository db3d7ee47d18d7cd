"""mkdocs hook: the command-line reference, generated from ``edgedev``'s own argument parser.

Every command registered in ``edgedev.cli.COMMANDS`` appears with its ``--help`` text, so the
page lists exactly the options (and environment variables) the installed ``edgedev`` takes.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

PAGE = "reference/cli.md"

INTRO = """# Command line

Generated from `edgedev --help` when the documentation is built. Every command that talks to
MQTT takes `--broker mqtt://HOST:PORT` and `--topic-root ROOT`; defaults come from the
environment (`EDGEDEV_BROKER`, `EDGEDEV_TOPIC_ROOT`, `EDGEDEV_NODE`, ...) where the help says
so, which is how the container manifests configure them.
"""


def help_text(parser: argparse.ArgumentParser) -> str:
    """``parser``'s help at a fixed width, independent of the terminal building the docs."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        return parser.format_help()
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The sub-command parsers of ``parser``, by name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def reference_markdown() -> str:
    """The whole page."""
    from edgedev.cli import build_parser

    parser = build_parser()
    parts = [INTRO, "## `edgedev`", "", "```text", help_text(parser).rstrip(), "```", ""]
    for name, sub in commands(parser).items():
        parts += [f"## `edgedev {name}`", "", "```text", help_text(sub).rstrip(), "```", ""]
    return "\n".join(parts)


def on_files(files: Any, config: Any) -> Any:
    """Add the generated page to the site."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=reference_markdown()))
    return files
