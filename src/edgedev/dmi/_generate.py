"""Regenerate the Python modules of ``_pb/api.proto`` (needs grpcio-tools).

Run ``python -m edgedev.dmi._generate`` after changing the ``.proto``; the generated modules
are committed, and a test checks that regenerating gives the same files.
"""

from __future__ import annotations

from pathlib import Path

from edgedev._protoc import Proto, regenerate

SRC = Path(__file__).parents[2]
PROTO = Proto(Path(__file__).parent / "_pb" / "api.proto", root=SRC, grpc=True)
"""KubeEdge's DMI proto, compiled from ``src`` (registered as ``edgedev/dmi/_pb/api.proto``)."""

if __name__ == "__main__":  # pragma: no cover
    for path in regenerate(PROTO):
        print(path)
