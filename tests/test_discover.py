"""The shared part of ``edgedev discover``: names, documents, and the command's contract.

Names and documents are pure and tested directly. The command is tested with a discoverer
registered in this process for the example driver's protocol (``linetcp``), so that what is
tested is edgedev's part: shared options, the check of the documents with the protocol's
driver, the output written whole or not at all, the summary and the exit codes.
"""

from __future__ import annotations

import argparse
import json
import re
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from edgedev import DeviceError
from edgedev.cli import main
from edgedev.config import AccessMode
from edgedev.discover import (
    DeviceDraft,
    Discoverer,
    Discovery,
    Options,
    PropertyDraft,
    Summary,
    UsageError,
    build_documents,
    discoverers,
    documents_yaml,
    kubernetes_name,
    property_name,
    unique_names,
)
from edgedev.loader import load_devices
from edgedev.twin import PropertyType
from edgedev.wire import key_refusal

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "tests/data/kubeedge_v1beta1_devices.schema.json").read_text())
LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"


def crd_errors(documents: list[dict[str, Any]]) -> list[str]:
    found = []
    for doc in documents:
        validator = jsonschema.Draft202012Validator({**SCHEMA, "$ref": f"#/$defs/{doc['kind']}"})
        found += [f"{doc['metadata']['name']}: {e.message}" for e in validator.iter_errors(doc)]
    return found


# names --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("found", "made"),
    [
        ("PumpType", "pump-type"),
        ("EURange", "eu-range"),
        ("Plant/Line1/Pump1", "plant-line1-pump1"),
        ("Température Zone 1", "temperature-zone-1"),
        ("--Tank A--", "tank-a"),
        ("°°°", "device"),
        ("x" * 80, "x" * 63),
    ],
)
def test_kubernetes_names(found: str, made: str) -> None:
    assert kubernetes_name(found) == made


@pytest.mark.parametrize(
    ("found", "made"),
    [
        ("Speed", "Speed"),
        ("Motor.Speed", "Motor.Speed"),
        ("Temp °C", "Temp_C"),
        ("Flow (m³/h)", "Flow_m3/h"),
        ("Température", "Temperature"),
        ("  ", "value"),
        ("a" * 200, "a" * 128),
    ],
)
def test_property_names_fit_edgecore(found: str, made: str) -> None:
    assert property_name(found) == made


def test_unique_names_keep_the_first_and_number_the_others() -> None:
    assert unique_names(["a", "a", "a-2", "b", "a"], separator="-", limit=63) == [
        "a",
        "a-3",  # a-2 is some other thing's own name
        "a-2",
        "b",
        "a-4",
    ]
    long = "x" * 63
    assert unique_names([long, long], separator="-", limit=63) == [long, "x" * 61 + "-2"]


@given(st.lists(st.text(max_size=80), max_size=30))
def test_any_names_become_valid_unique_and_the_same_each_time(found: list[str]) -> None:
    devices = unique_names([kubernetes_name(f) for f in found], separator="-", limit=63)
    props = unique_names([property_name(f) for f in found], separator="_", limit=128)
    for names in (devices, props):
        assert len(set(names)) == len(names) == len(found)
    assert all(re.fullmatch(LABEL, n) and len(n) <= 63 for n in devices)
    assert all(key_refusal(n) is None for n in props)
    assert devices == unique_names([kubernetes_name(f) for f in found], separator="-", limit=63)


# documents ----------------------------------------------------------------------------------
def pump(name: str, *extra: str, low: str = "0") -> DeviceDraft:
    props = [
        PropertyDraft("Speed", PropertyType.FLOAT, {"key": f"{name}.speed"}, minimum=low),
        PropertyDraft(
            "Run", PropertyType.BOOLEAN, {"key": f"{name}.run"}, access=AccessMode.READ_WRITE
        ),
        *(PropertyDraft(e, PropertyType.INT, {"key": f"{name}.{e}"}) for e in extra),
    ]
    return DeviceDraft(name, props, {"port": 5300}, kind="PumpType")


def test_devices_of_one_kind_share_a_model_and_odd_ones_get_a_stable_suffix() -> None:
    drafts = [pump("P1"), pump("P2", "Vibration"), pump("P3"), pump("P4", "Vibration")]
    made = build_documents("linetcp", drafts, Options())
    models = [d for d in made.documents if d["kind"] == "DeviceModel"]
    devices = [d for d in made.documents if d["kind"] == "Device"]
    assert [m["metadata"]["name"] for m in models] == ["pump-type", models[1]["metadata"]["name"]]
    odd = models[1]["metadata"]["name"]
    assert odd.startswith("pump-type-") and len(odd) == len("pump-type-") + 6
    assert [d["spec"]["deviceModelRef"]["name"] for d in devices] == [
        "pump-type",
        odd,
        "pump-type",
        odd,
    ]
    # the suffix depends on the properties only: the same in another run, another order
    again = build_documents("linetcp", [pump("P4", "Vibration")], Options())
    assert again.documents[0]["metadata"]["name"] == "pump-type"  # the only variant: plain
    again = build_documents("linetcp", [pump("X"), pump("Y", "Vibration")], Options())
    assert again.documents[1]["metadata"]["name"] == odd


def test_a_device_of_no_kind_has_a_model_named_after_it() -> None:
    draft = DeviceDraft(
        "Line 1", [PropertyDraft("Temp °C", PropertyType.FLOAT, {"key": "t"})], {"port": 1}
    )
    made = build_documents("linetcp", [draft, draft], Options(name_prefix="site-a-"))
    assert [d["metadata"]["name"] for d in made.documents] == [
        "site-a-line-1",
        "site-a-line-1-2",
        "site-a-line-1",
        "site-a-line-1-2",
    ]
    assert made.renamed == 2 and made.properties == 2


def test_documents_carry_the_shared_options_and_the_slowest_cycle() -> None:
    slow = PropertyDraft("Slow", PropertyType.FLOAT, {"key": "s"}, min_cycle=5000, unit="bar")
    fast = PropertyDraft("Fast", PropertyType.FLOAT, {"key": "f"})
    draft = DeviceDraft("d", [slow, fast], {"port": 1}, annotations={"edgedev/vendor": "Acme"})
    options = Options(namespace="plant", node_name="edge-1", collect_cycle=2000)
    model, device = build_documents("linetcp", [draft], options).documents
    assert model["metadata"] == {"name": "d", "namespace": "plant"}
    assert model["spec"]["properties"][0] == {
        "name": "Slow",
        "type": "FLOAT",
        "accessMode": "ReadOnly",
        "unit": "bar",
    }
    assert device["metadata"]["annotations"] == {"edgedev/vendor": "Acme"}
    assert device["spec"]["nodeName"] == "edge-1"
    assert [p["collectCycle"] for p in device["spec"]["properties"]] == [5000, 2000]
    assert crd_errors([model, device]) == []


@pytest.mark.needs("edgedev_linetcp")
def test_documents_load_as_edgedev_run_loads_them(tmp_path: Path) -> None:
    drafts = [pump("P1"), pump("P2", "Vibration"), pump("P3")]
    made = build_documents("linetcp", drafts, Options(namespace="plant"))
    path = tmp_path / "found.yaml"
    path.write_text(documents_yaml(made.documents, ["found"]), encoding="utf-8")
    assert path.read_text().startswith("# found\n---\n")
    specs = load_devices([path])
    assert [s.id for s in specs] == ["plant/p1", "plant/p2", "plant/p3"]
    assert {p.name: p.writable for p in specs[0].properties} == {"Speed": False, "Run": True}
    assert crd_errors(made.documents) == []


# the command --------------------------------------------------------------------------------
class Fake(Discoverer):
    """Finds what the test tells it to, for the example driver's protocol."""

    help = "a discoverer for the tests"
    found: ClassVar[list[DeviceDraft]] = []
    fail: ClassVar[BaseException | None] = None

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("target")

    async def discover(self, args: argparse.Namespace, options: Options) -> Discovery:
        if self.fail is not None:
            raise self.fail
        summary = Summary(target=args.target)
        summary.sent("READ", 3)
        summary.note("looked at 3 things")
        summary.skip("thing 3", "not a value")
        return Discovery(list(self.found), summary)


@pytest.fixture
def fake() -> Any:
    discoverers.register("linetcp", Fake)
    Fake.found = [pump("P1"), pump("P2")]
    Fake.fail = None
    yield Fake
    discoverers._loaded.pop("linetcp", None)


pytestmark = pytest.mark.needs("edgedev_linetcp")


def test_discover_writes_yaml_to_stdout_and_the_summary_to_stderr(
    fake: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["discover", "linetcp", "lab:5300", "--namespace", "plant"]) == 0
    out, err = capsys.readouterr()
    docs = list(yaml.safe_load_all(out))
    assert [d["kind"] for d in docs] == ["DeviceModel", "Device", "Device"]
    assert {d["metadata"]["namespace"] for d in docs} == {"plant"}
    assert "discovered lab:5300 in " in err and "with 3 requests (READ 3)" in err
    assert "looked at 3 things" in err
    assert "made 1 DeviceModel, 2 Devices and 4 properties" in err
    assert "skipped 1:\n  thing 3: not a value" in err


def test_output_file_is_replaced_whole_and_left_alone_on_failure(
    fake: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "plant.yaml"
    out.write_text("old\n")
    assert main(["discover", "linetcp", "lab:5300", "-o", str(out)]) == 0
    assert "kind: Device" in out.read_text()
    assert capsys.readouterr().out == ""
    assert [p.name for p in tmp_path.iterdir()] == ["plant.yaml"]  # no temporary left

    before = out.read_text()
    fake.fail = DeviceError("lab:5300: connection refused")
    assert main(["discover", "linetcp", "lab:5300", "-o", str(out)]) == 1
    assert capsys.readouterr().err == "error: lab:5300: connection refused\n"
    assert out.read_text() == before

    fake.fail = None
    bad = [PropertyDraft("x", PropertyType.INT, {"key": "a b"})]
    fake.found = [DeviceDraft("bad", bad, {"port": 5300})]
    assert main(["discover", "linetcp", "lab:5300", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "do not validate, so none were written" in err and "visitors.configData.key" in err
    assert out.read_text() == before
    assert main(["discover", "linetcp", "lab:5300", "-o", str(tmp_path / "no" / "x.yaml")]) == 1


def test_usage_mistakes_exit_2(fake: Any, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["discover", "linetcp", "lab", "--collect-cycle", "0"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["discover", "linetcp", "lab", "--namespace", "Not_Valid"])
    assert exc.value.code == 2
    capsys.readouterr()
    fake.fail = UsageError("--root and --include do not go together")
    assert main(["discover", "linetcp", "lab"]) == 2
    assert capsys.readouterr().err == (
        "edgedev discover linetcp: error: --root and --include do not go together\n"
    )


def test_a_broken_discoverer_plugin_harms_no_other(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    points = discoverers._entry_points()
    broken = EntryPoint("broken", "no_such_module:Discoverer", "edgedev.discoverers")
    monkeypatch.setattr(discoverers, "_entry_points", lambda: {**points, "broken": broken})
    with pytest.raises(SystemExit) as exc:
        main(["discover", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in points) and "broken" in out and "unavailable" in out
    assert main(["discover", "broken"]) == 1
    assert "no_such_module" in capsys.readouterr().err
