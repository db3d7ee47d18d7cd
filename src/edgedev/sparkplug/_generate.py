"""Regenerate the Python modules of ``_pb/sparkplug_b.proto`` (needs grpcio-tools).

Run ``python -m edgedev.sparkplug._generate`` after changing the ``.proto``; the generated
modules are committed, and a test checks that regenerating gives the same files.
"""

from __future__ import annotations

from pathlib import Path

from edgedev._protoc import Proto, regenerate

PB = Path(__file__).parent / "_pb"
PROTO = Proto(PB / "sparkplug_b.proto", root=PB)
"""Tahu's Sparkplug B proto, compiled from its own folder (registered as ``sparkplug_b.proto``)."""

if __name__ == "__main__":  # pragma: no cover
    for path in regenerate(PROTO):
        print(path)
