"""The Dockerfile, read with Docker's own parser (no daemon needed).

One Dockerfile at the root builds the core image and every mapper image (``MAPPER``): a
builder stage makes wheels, the runtime installs only those wheels into the base image, runs
as the unprivileged user the manifests expect, and copies only files that exist in the build
context and that ``.dockerignore`` keeps. The images themselves are built and run in
``test_containers.py`` (marked ``container``).
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import dockerfile

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = ("modbus", "opcua", "ble", "gpio", "mqtt")
DOCKERFILE = ROOT / "Dockerfile"


def commands() -> list[dockerfile.Command]:
    return list(dockerfile.parse_file(str(DOCKERFILE)))


def stages() -> dict[str, list[dockerfile.Command]]:
    """The instructions of each stage by name (the unnamed last stage is ``""``)."""
    result: dict[str, list[dockerfile.Command]] = {}
    current: list[dockerfile.Command] | None = None
    for command in commands():
        if command.cmd == "FROM":
            name = command.value[2] if len(command.value) == 3 else ""
            current = result.setdefault(name, [])
        if current is not None:
            current.append(command)
    return result


def global_args() -> dict[str, str]:
    args: dict[str, str] = {}
    for command in commands():
        if command.cmd == "FROM":
            break
        name, _, default = command.value[0].partition("=")
        args[name] = default
    return args


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


def test_deploy_one_dockerfile_replaces_the_mapper_copies() -> None:
    found = [*ROOT.glob("Dockerfile*"), *ROOT.glob("*/**/Dockerfile*")]
    assert [p for p in found if not {".venv", ".git"} & set(p.parts)] == [DOCKERFILE]
    text = DOCKERFILE.read_text(encoding="utf-8")
    # a `# syntax=` line makes BuildKit pull a frontend image: fails without a registry
    assert "syntax=" not in text.splitlines()[0]


def test_deploy_base_image_is_an_argument_defaulting_to_official_slim_python() -> None:
    args = global_args()
    assert args["PYTHON_VERSION"] == "3.12"
    assert args["BASE_IMAGE"] == "python:${PYTHON_VERSION}-slim"
    assert args["MAPPER"] == ""  # none: the core image
    named = stages()
    assert named["builder"][0].value == ("${BASE_IMAGE}", "AS", "builder")
    assert named["runtime"][0].value == ("${BASE_IMAGE}", "AS", "runtime")


def test_deploy_runtime_installs_only_the_builders_wheels_without_cache() -> None:
    named = stages()
    wheel = next(c for c in named["builder"] if c.cmd == "RUN" and "pip wheel" in c.value[0])
    assert '"") core=. ' in wheel.value[0]  # the core, from the context
    assert 'core=".[$EXTRAS]"' in wheel.value[0]  # a mapper's extras: DMI, push sinks
    # pip's downloads stay in BuildKit's cache mount, reused by the next build, in no image
    assert any(f.startswith("--mount=type=cache,target=/root/.cache/pip") for f in wheel.flags)
    runtime = named["runtime"]
    install = next(c for c in runtime if c.cmd == "RUN" and "pip install" in c.value[0])
    assert "--mount=type=bind,from=builder,source=/wheels,target=/wheels" in install.flags
    assert "--no-cache-dir" in install.value[0]
    assert "--no-index --find-links /wheels" in install.value[0]  # only the builder's wheels
    assert not any(c.cmd == "COPY" for c in runtime)  # no sources in the runtime image
    # the compiler (lgpio's sdist) is installed in the builder only
    assert "gcc" not in " ".join(" ".join(c.value) for c in runtime)


def test_deploy_image_runs_unprivileged_edgedev() -> None:
    runtime = stages()["runtime"]
    assert [c.value[0] for c in runtime if c.cmd == "USER"] == ["10001:10001"]  # runAsUser
    install = next(c for c in runtime if c.cmd == "RUN" and "pip install" in c.value[0])
    assert "--uid 10001 --gid 10001" in install.value[0]
    assert next(c for c in runtime if c.cmd == "ENTRYPOINT").value == ("edgedev",)
    env = next(c for c in runtime if c.cmd == "ENV").value
    assert dict(zip(env[::2], env[1::2], strict=True))["EDGEDEV_DATA_DIR"] == "/var/lib/edgedev"
    # no HEALTHCHECK: kubelet probes the health port (docs/containers.md)
    assert not any(c.cmd == "HEALTHCHECK" for c in commands())


def test_deploy_core_runs_the_agent_and_a_mapper_runs_its_devices_file() -> None:
    named = stages()
    assert global_args()["ROLE"] == "${MAPPER:+mapper}"
    assert named[""][0].value == ("${ROLE:-core}",)
    assert next(c for c in named["core"] if c.cmd == "CMD").value == ("agent",)
    cmd = next(c for c in named["mapper"] if c.cmd == "CMD").value
    assert cmd == ("run", "-f", "/etc/edgedev/devices.yaml")


def test_deploy_image_labels_name_source_version_and_licence() -> None:
    label = next(c for c in stages()[""] if c.cmd == "LABEL").value
    labels = dict(zip(label[::2], (v.strip('"') for v in label[1::2]), strict=True))
    prefix = "org.opencontainers.image."
    assert {"title", "version", "source", "revision", "licenses"} <= {
        k.removeprefix(prefix) for k in labels
    }
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert labels[prefix + "licenses"] == project["license"]
    version = next(c for c in stages()[""] if c.cmd == "ARG" and c.value[0].startswith("VERSION"))
    assert version.value[0] == f"VERSION={project['version']}"


def test_deploy_image_copies_only_what_the_root_context_holds() -> None:
    for copy in (c for c in stages()["builder"] if c.cmd == "COPY"):
        for source in copy.value[:-1]:
            for protocol in PROTOCOLS:
                path = source.replace("${MAPPER}", protocol)
                assert (ROOT / path).exists(), path
                assert not ignored(path), f"{path} is excluded by .dockerignore"
    # and the context stays small: no virtualenv, tests or caches
    for heavy in (".venv", ".git", "tests", "mappers/modbus/tests", "src/edgedev/__pycache__"):
        assert ignored(heavy), heavy


def test_deploy_every_mapper_builds_its_distribution() -> None:
    builder = stages()["builder"]
    assert any(c.cmd == "COPY" and c.value[0] == "mappers/${MAPPER}" for c in builder)
    wheel = next(c for c in builder if c.cmd == "RUN" and "pip wheel" in c.value[0]).value[0]
    assert '*) core=".[$EXTRAS]" mapper="./mappers/$MAPPER"' in wheel
    # EXTRAS: extras that exist, DMI (KubeEdge), web (the REST API) and every push sink's but
    # MySQL's (36 MB)
    default = re.search(r"^ARG EXTRAS=(\S+)$", DOCKERFILE.read_text(encoding="utf-8"), re.M)
    assert default is not None
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    sinks = project["optional-dependencies"]["sinks"][0]  # "edgedev[redis,mysql,...]"
    wanted = {"dmi", "web", *sinks[sinks.index("[") + 1 : -1].split(",")} - {"mysql"}
    assert set(default[1].split(",")) == wanted
    extras = tomllib.loads((ROOT / "mappers/gpio/pyproject.toml").read_text(encoding="utf-8"))
    assert "lgpio" in extras["project"]["optional-dependencies"]
    assert 'mapper="./mappers/gpio[lgpio]"' in wheel  # the pin backend for a real Pi
    for protocol in PROTOCOLS:
        project = tomllib.loads((ROOT / "mappers" / protocol / "pyproject.toml").read_text())
        assert project["project"]["name"] == f"edgedev-{protocol}"  # the image's name too
