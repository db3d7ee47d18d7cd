"""The documentation builds with ``mkdocs build --strict`` and its reference pages are generated
from the code: every installed driver's keys, every command; a broken driver is named, not fatal.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path
from types import ModuleType

import pytest

from edgedev.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]


def hook(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"docs_hook_{name}", ROOT / "docs/_hooks" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.needs("mkdocs", "edgedev_modbus")
def test_deploy_docs_build_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(site),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    page = (site / "reference/configuration/index.html").read_text(encoding="utf-8")
    assert "slaveID" in page and "deviceModelRef" in page
    assert (site / "writing-a-driver/index.html").is_file()


@pytest.mark.needs("edgedev_modbus", "edgedev_linetcp")
def test_deploy_docs_configuration_reference_covers_core_and_drivers() -> None:
    text = hook("config_reference").reference_markdown()
    for key in ("deviceModelRef", "collectCycle", "reportOnChange", "accessMode", "protocolName"):
        assert f"`{key}`" in text
    # The reference Modbus driver and the third-party example, as users write their keys.
    for key in ("ip", "slaveID", "serialPort", "register", "offset", "isRegisterSwap", "dataType"):
        assert f"`{key}`" in text
    assert "### `linetcp`" in text and "`key`" in text and "edgedev-example-driver" in text
    assert "`HoldingRegister`" in text  # enums are spelled out


@pytest.mark.needs("edgedev_modbus")
def test_deploy_docs_configuration_reference_survives_a_broken_driver(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = hook("config_reference")
    real = module.entry_points

    def with_broken(group: str) -> list[EntryPoint]:
        broken = EntryPoint(name="broken", value="edgedev_no_such_module:Driver", group=group)
        return [*real(group=group), broken]

    monkeypatch.setattr(module, "entry_points", with_broken)
    text = module.reference_markdown()
    assert "### `broken`" in text and "failed to import" in text
    assert "slaveID" in text  # the others are still there


def test_deploy_docs_cli_reference_lists_every_command() -> None:
    text = hook("cli_reference").reference_markdown()
    for name in COMMANDS:
        assert f"## `edgedev {name}`" in text
    assert "--broker" in text and "EDGEDEV_BROKER" in text


def test_deploy_docs_driver_guide_quotes_the_example_as_it_is() -> None:
    guide = (ROOT / "docs/writing-a-driver.md").read_text(encoding="utf-8")
    example = ROOT / "examples/edgedev-example-driver"
    source = "\n".join(
        (example / "src/edgedev_linetcp" / name).read_text(encoding="utf-8")
        for name in ("driver.py", "simulator.py")
    )
    pyproject = (example / "pyproject.toml").read_text(encoding="utf-8")
    blocks = re.findall(r"```(python|toml)\n(.*?)```", guide, flags=re.S)
    quoted = [
        text
        for kind, text in blocks
        if kind == "python" and text.lstrip().startswith(("class Line", "@staticmethod"))
    ]
    assert quoted, "the guide quotes the example's models"
    assert any("class LineSimulator" in text for text in quoted), "and its simulator"
    for text in quoted:
        if "..." not in text:
            assert text.strip() in source
    for kind, text in blocks:
        if kind == "toml":
            for line in text.strip().splitlines():
                assert line in pyproject, line
