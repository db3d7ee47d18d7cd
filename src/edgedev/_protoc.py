"""Python modules from a ``.proto`` file, with grpcio-tools: one generator for every proto we ship.

The generated modules are committed beside their ``.proto`` (``edgedev/dmi/_pb``,
``edgedev/sparkplug/_pb``); each package has a ``_generate`` module that names its proto and
calls :func:`generate`, and a test regenerates them and compares (version stamps masked). The
tools are pinned exactly in ``pyproject.toml`` (``grpcio-tools``), so that regenerating with
them changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Proto:
    """A ``.proto`` file we commit generated code of.

    Attributes:
        path: the ``.proto`` file.
        root: the include root it is compiled from: its path relative to the root is the
            file name the generated code registers in protobuf's descriptor pool (and the
            folders its modules land in under ``out``).
        grpc: whether it has services to generate gRPC code for (``*_pb2_grpc.py``).
    """

    path: Path
    root: Path
    grpc: bool = False

    @property
    def relative(self) -> Path:
        """The path of the proto under :attr:`root`."""
        return self.path.relative_to(self.root)

    @property
    def generated(self) -> tuple[str, ...]:
        """The names of the modules generated from it."""
        stem = self.path.stem
        names = (f"{stem}_pb2.py", f"{stem}_pb2.pyi")
        return (*names, f"{stem}_pb2_grpc.py") if self.grpc else names


def generate(proto: Proto, out: Path) -> list[Path]:
    """Write the generated modules of ``proto`` under ``out``.

    Returns:
        The paths of the generated files.

    Raises:
        RuntimeError: protoc failed.
    """
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    out.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{proto.root}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
    ]
    if proto.grpc:
        args.append(f"--grpc_python_out={out}")
    code = protoc.main([*args, str(proto.path)])
    if code != 0:
        raise RuntimeError(f"protoc failed on {proto.path} (exit {code})")
    return [out / proto.relative.parent / name for name in proto.generated]


def regenerate(proto: Proto) -> list[Path]:
    """Write the generated modules of ``proto`` in place, beside it (the committed copies)."""
    return generate(proto, proto.root)
