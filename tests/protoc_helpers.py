"""The committed generated protobuf code of a proto (DMI's, Sparkplug's), checked against it."""

from __future__ import annotations

import re
from pathlib import Path

from edgedev._protoc import Proto, generate

_VERSION_STAMPS = (
    re.compile(r"^(GRPC_GENERATED_VERSION = ).*$", re.M),
    re.compile(r"^(# Protobuf Python Version: ).*$", re.M),
    re.compile(r"(ValidateProtobufRuntimeVersion\(\n\s+\S+,\n)(?:\s+\d+,\n){3}", re.M),
)


def without_version_stamps(code: str) -> str:
    """``code`` with the generator's version stamps masked: what it generates is compared.

    A patch release of grpcio-tools changes only these lines; pyproject pins the release the
    committed files come from, so that regenerating them changes nothing.
    """
    for stamp in _VERSION_STAMPS:
        code = stamp.sub(r"\1<version>", code)
    return code


def check_committed(proto: Proto, scratch: Path, command: str) -> None:
    """Regenerate ``proto`` in ``scratch``: each module must equal the committed one."""
    paths = generate(proto, scratch)
    assert [p.name for p in paths] == list(proto.generated)
    for path in paths:
        committed = proto.path.parent / path.name
        assert without_version_stamps(committed.read_text()) == without_version_stamps(
            path.read_text()
        ), f"regenerate {committed.name}: {command}"
