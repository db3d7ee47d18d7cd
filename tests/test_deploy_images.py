"""The Dockerfiles, read with Docker's own parser (no daemon needed).

Each image is built from the repository root in two stages (wheels, then a slim runtime with
only those wheels), runs as the unprivileged user the manifests expect, and copies only files
that exist in the build context and that ``.dockerignore`` keeps.
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import dockerfile
import pytest

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = ("modbus", "opcua", "ble", "gpio")
DOCKERFILES = [ROOT / "Dockerfile", *(ROOT / "mappers" / p / "Dockerfile" for p in PROTOCOLS)]


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def stages(path: Path) -> list[list[dockerfile.Command]]:
    """The instructions of each stage (ARGs before the first FROM are left out)."""
    result: list[list[dockerfile.Command]] = []
    for command in dockerfile.parse_file(str(path)):
        if command.cmd == "FROM":
            result.append([])
        if result:
            result[-1].append(command)
    return result


def ignored(path: str) -> bool:
    """Whether ``.dockerignore`` leaves ``path`` (relative to the root) out of the context."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatchcase(prefix.rsplit("/", 1)[-1], bare)
            ):
                return True
    return False


@pytest.mark.parametrize("path", DOCKERFILES, ids=rel)
def test_deploy_image_is_two_stages_on_slim_python(path: Path) -> None:
    commands = dockerfile.parse_file(str(path))
    assert commands[0].cmd == "ARG" and commands[0].value == ("PYTHON_VERSION=3.12",)
    builder, runtime = stages(path)
    assert builder[0].value == ("python:${PYTHON_VERSION}-slim", "AS", "builder")
    assert runtime[0].value == ("python:${PYTHON_VERSION}-slim",)
    wheel = next(c for c in builder if c.cmd == "RUN" and "pip wheel" in c.value[0])
    assert " . " in wheel.value[0] + " "  # the core, from the context
    install = next(c for c in runtime if c.cmd == "RUN" and "pip install" in c.value[0])
    assert "--mount=type=bind,from=builder,source=/wheels,target=/wheels" in install.flags
    assert "--no-index --find-links /wheels" in install.value[0]  # only the builder's wheels
    assert not any(c.cmd == "COPY" for c in runtime)  # no sources in the runtime image


@pytest.mark.parametrize("path", DOCKERFILES, ids=rel)
def test_deploy_image_runs_unprivileged_edgedev(path: Path) -> None:
    (*_, runtime) = stages(path)
    users = [c.value[0] for c in runtime if c.cmd == "USER"]
    assert users == ["10001:10001"]  # runAsUser/runAsGroup in the manifests
    install = next(c for c in runtime if c.cmd == "RUN" and "pip install" in c.value[0])
    assert "--uid 10001 --gid 10001" in install.value[0]
    assert next(c for c in runtime if c.cmd == "ENTRYPOINT").value == ("edgedev",)
    env = next(c for c in runtime if c.cmd == "ENV").value
    assert dict(zip(env[::2], env[1::2], strict=True))["EDGEDEV_DATA_DIR"] == "/var/lib/edgedev"


@pytest.mark.parametrize("path", DOCKERFILES, ids=rel)
def test_deploy_image_copies_only_what_the_root_context_holds(path: Path) -> None:
    builder, _ = stages(path)
    for copy in (c for c in builder if c.cmd == "COPY"):
        for source in copy.value[:-1]:
            assert (ROOT / source).exists(), source
            assert not ignored(source), f"{source} is excluded by .dockerignore"
    # and the context stays small: no virtualenv, tests or caches
    for heavy in (".venv", ".git", "tests", "mappers/modbus/tests", "src/edgedev/__pycache__"):
        assert ignored(heavy), heavy


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_deploy_mapper_image_installs_its_distribution(protocol: str) -> None:
    path = ROOT / "mappers" / protocol / "Dockerfile"
    name = tomllib.loads((ROOT / "mappers" / protocol / "pyproject.toml").read_text())["project"]
    builder, runtime = stages(path)
    assert any(c.cmd == "COPY" and c.value[0] == f"mappers/{protocol}" for c in builder)
    wheel = next(c for c in builder if c.cmd == "RUN" and "pip wheel" in c.value[0]).value[0]
    assert f"./mappers/{protocol}" in wheel
    install = next(c for c in runtime if c.cmd == "RUN" and "pip install" in c.value[0]).value[0]
    assert f'"{name["name"]}' in install
    cmd = next(c for c in runtime if c.cmd == "CMD").value
    assert cmd == ("run", "-f", "/etc/edgedev/devices.yaml")
