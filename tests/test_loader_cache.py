"""The loader's cache of the resolved fleet: the same specs, fresh whenever a file changes."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import pytest

from edgedev import ConfigError, Problem, load_devices
from edgedev.cli._run import add_parser, cache_dir
from edgedev.loader._cache import KEPT

pytestmark = pytest.mark.needs("edgedev_modbus")

FLEET = """\
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: thermo}
spec:
  protocol: modbus
  properties:
    - {name: temp, type: FLOAT, accessMode: ReadOnly}
    - {name: setpoint, type: INT}
"""


def device(name: str, port: int = 5020, cycle: int = 1000) -> str:
    return f"""\
---
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {{name: {name}}}
spec:
  deviceModelRef: {{name: thermo}}
  protocol:
    protocolName: modbus
    configData: {{ip: 127.0.0.1, port: {port}}}
  properties:
    - name: temp
      collectCycle: {cycle}
      visitors:
        protocolName: modbus
        configData: {{register: InputRegister, offset: 0, scale: 0.1, dataType: int16}}
    - name: setpoint
      visitors:
        protocolName: modbus
        configData: {{register: HoldingRegister, offset: 0}}
"""


def from_cache(caplog: pytest.LogCaptureFixture) -> bool:
    return any("from the cache" in r.getMessage() for r in caplog.records)


@pytest.fixture(autouse=True)
def debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="edgedev.config")


def test_a_second_load_of_unchanged_files_gives_the_same_specs_from_the_cache(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET + device("a") + device("b", 5021))
    cache = tmp_path / "cache"
    first = load_devices([path], cache=cache)
    assert not from_cache(caplog)
    second = load_devices([path], cache=cache)
    assert from_cache(caplog)
    assert second == first == load_devices([path])
    assert second[0].properties is second[1].properties  # still shared, as the loader made them
    assert os.stat(cache).st_mode & 0o777 == 0o700


def test_a_changed_file_is_loaded_again(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET + device("a"))
    load_devices([path], cache=tmp_path)
    path.write_text(FLEET + device("a", port=6000))
    [spec] = load_devices([path], cache=tmp_path)
    assert spec.config.port == 6000
    assert not from_cache(caplog)


def test_warnings_are_said_again_at_each_start(tmp_path: Path):
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET + device("a", cycle=10_000_000_000))
    said: list[list[Problem]] = [[], []]
    load_devices([path], cache=tmp_path, warnings=said[0])
    load_devices([path], cache=tmp_path, warnings=said[1])
    assert said[0] == said[1] and "collectCycle" in str(said[1][0])


def test_a_file_with_problems_is_not_kept(tmp_path: Path):
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET + device("a").replace("int16", "int17"))
    for _ in range(2):
        with pytest.raises(ConfigError, match="int17"):
            load_devices([path], cache=tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("fleet-*"))


def test_a_cache_others_may_write_or_a_damaged_one_is_not_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET + device("a"))
    cache = tmp_path / "cache"
    load_devices([path], cache=cache)
    [kept] = cache.glob("fleet-*.pickle")
    kept.chmod(0o666)
    assert load_devices([path], cache=cache)[0].name == "a"
    assert not from_cache(caplog)
    [kept] = cache.glob("fleet-*.pickle")  # written again, privately
    kept.write_bytes(kept.read_bytes()[:100])
    assert load_devices([path], cache=cache)[0].name == "a"
    assert not from_cache(caplog)


def test_the_cache_keeps_a_bounded_number_of_fleets(tmp_path: Path):
    cache = tmp_path / "cache"
    for i in range(KEPT + 3):
        path = tmp_path / f"fleet-{i}.yaml"
        path.write_text(FLEET + device("a"))
        load_devices([path], cache=cache)
    assert len(list(cache.glob("fleet-*.pickle"))) == KEPT


def test_edgedev_run_keeps_its_cache_beside_its_queue_or_in_the_users_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    parser = argparse.ArgumentParser()
    add_parser(parser)
    monkeypatch.delenv("EDGEDEV_CACHE_DIR", raising=False)
    monkeypatch.delenv("EDGEDEV_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir(parser.parse_args([])) == str(tmp_path / "xdg" / "edgedev")
    data = tmp_path / "data"
    assert cache_dir(parser.parse_args(["--data-dir", str(data)])) == str(data / "cache")
    given = parser.parse_args(["--data-dir", str(data), "--cache-dir", str(tmp_path / "c")])
    assert cache_dir(given) == str(tmp_path / "c")
    assert cache_dir(parser.parse_args(["--no-cache"])) is None
