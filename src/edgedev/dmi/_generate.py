"""Regenerate the Python modules of ``_pb/api.proto`` (needs grpcio-tools).

Run ``python -m edgedev.dmi._generate`` after changing the ``.proto``; the generated modules
are committed, and a test checks that regenerating gives the same files.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTO = Path(__file__).parent / "_pb" / "api.proto"
SRC = Path(__file__).parents[2]
GENERATED = ("api_pb2.py", "api_pb2.pyi", "api_pb2_grpc.py")


def generate(out: Path) -> list[Path]:
    """Write the generated modules of the DMI proto under ``out`` (a source root).

    Returns:
        The paths of the generated files.

    Raises:
        RuntimeError: protoc failed.
    """
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    rel = PROTO.relative_to(SRC)
    out.mkdir(parents=True, exist_ok=True)
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{SRC}",
            f"-I{include}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            str(rel),
        ]
    )
    if code != 0:
        raise RuntimeError(f"protoc failed on {PROTO} (exit {code})")
    return [out / rel.parent / name for name in GENERATED]


if __name__ == "__main__":  # pragma: no cover
    import os

    os.chdir(SRC)
    for path in generate(SRC):
        print(path)
    sys.exit(0)
