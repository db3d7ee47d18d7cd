"""The pure half of `edgedev discover modbus`: the range scan, unit lists, maps, drafts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgedev.config import AccessMode
from edgedev.twin import PropertyType
from edgedev_modbus.codec import Table
from edgedev_modbus.found import Unit, unit_annotations, unit_draft
from edgedev_modbus.regmap import MapError, modicon, parse_map
from edgedev_modbus.scan import MAX_COUNT, NO_ANSWER, RangeScan, parse_units


def scan(readable: set[int], last: int, stride: int = 1, table: Table = Table.HOLDING) -> RangeScan:
    """Run a scan against a device that serves exactly ``readable``."""
    found = RangeScan(table, last, stride)
    while (asked := found.request()) is not None:
        start, count = asked
        assert 1 <= count <= MAX_COUNT[table] and start >= 0 and start + count - 1 <= last
        found.answer(None if set(range(start, start + count)) <= readable else 2)
    return found


def addresses(ranges: list[tuple[int, int]]) -> set[int]:
    return {a for start, count in ranges for a in range(start, start + count)}


runs = st.lists(st.tuples(st.integers(0, 3000), st.integers(1, 300)), max_size=8)


@given(runs, st.integers(0, 3000))
def test_stride_1_finds_exactly_the_readable_addresses(blocks: list[tuple[int, int]], last: int):
    readable = {a for s, n in blocks for a in range(s, s + n) if a <= last}
    found = scan(readable, last)
    assert addresses(found.ranges) == readable
    starts = [s for s, _ in found.ranges]
    assert starts == sorted(starts)  # in order, adjacent ranges merged
    assert all(a + n < b for (a, n), (b, _) in zip(found.ranges, found.ranges[1:], strict=False))


@given(runs, st.integers(0, 3000), st.integers(2, 64))
def test_a_stride_misses_only_ranges_shorter_than_it(
    blocks: list[tuple[int, int]], last: int, stride: int
):
    readable = {a for s, n in blocks for a in range(s, s + n) if a <= last}
    found = addresses(scan(readable, last, stride).ranges)
    assert found <= readable
    for start, count in scan(readable, last).ranges:  # the true ranges
        if count >= stride:
            assert set(range(start, start + count)) <= found


def test_what_the_requests_cost() -> None:
    readable = {*range(0, 10), *range(100, 120), 1000, 1001}
    exact = scan(readable, 1999)
    assert addresses(exact.ranges) == readable
    assert exact.requests < 2000  # about one per unused address
    coarse = scan(readable, 1999, 16)
    assert coarse.requests < 200
    full = scan(set(range(0, 1000)), 999)
    assert full.ranges == [(0, 1000)] and full.requests == 8  # 125 registers a read
    bits = scan(set(range(0, 5000)), 4999, table=Table.COIL)
    assert bits.ranges == [(0, 5000)] and bits.requests == 3  # 2000 bits a read


@pytest.mark.parametrize(
    ("code", "why"),
    [
        (1, "exception code 1 (illegal function) at address 0"),
        (NO_ANSWER, "no answer at address 0"),
    ],
)
def test_other_exceptions_stop_the_table(code: int, why: str) -> None:
    found = RangeScan(Table.COIL, 100)
    assert found.request() == (0, 101)
    found.answer(code)
    assert found.done and found.stopped == why and found.ranges == []


def test_a_failure_later_keeps_what_was_found() -> None:
    found = RangeScan(Table.HOLDING, 500)
    found.request()
    found.answer(None)
    assert found.request() == (125, 125)
    found.answer(4)
    assert found.ranges == [(0, 125)]
    assert found.stopped == "exception code 4 (server device failure) at address 125"
    with pytest.raises(RuntimeError):
        found.answer(None)
    with pytest.raises(ValueError, match="stride 126"):
        RangeScan(Table.HOLDING, 10, stride=126)


@pytest.mark.parametrize(
    ("text", "units"),
    [("1-3", [1, 2, 3]), ("5,1-2,2", [5, 1, 2]), (" 7 ", [7]), ("0", [0]), ("247", [247])],
)
def test_unit_lists(text: str, units: list[int]) -> None:
    assert parse_units(text) == units


@pytest.mark.parametrize("text", ["", "x", "1-", "3-1", "248", "0-300", "-1"])
def test_bad_unit_lists(text: str) -> None:
    with pytest.raises(ValueError, match="unit"):
        parse_units(text)


# register maps ------------------------------------------------------------------------------
HEADER = "name,table,address,type,scale,unit,access,description"


@pytest.mark.parametrize(
    ("text", "table", "address"),
    [
        ("40001", Table.HOLDING, 0),
        ("30010", Table.INPUT, 9),
        ("00001", Table.COIL, 0),
        ("10002", Table.DISCRETE_INPUT, 1),
        ("465536", Table.HOLDING, 65535),
    ],
)
def test_modicon_addresses(text: str, table: Table, address: int) -> None:
    assert modicon(text) == (table, address)


def test_a_vendor_map_becomes_typed_properties() -> None:
    text = "\n".join(
        [
            HEADER + ",byteorder,wordorder",
            "Voltage L1,input,0,float32,,V,r,phase voltage,big,little",
            "Energy,,40101,uint32,0.1,kWh,,total energy,,",
            "Setpoint,holding,7,int16,1,degC,rw,,,",
            "Relay,coil,3,bool,,,rw,,,",
            "Serial,holding,0x20,string:4,,,,,,",
            "Alarm,,10005,bool,,,,,,",
            "",
        ]
    )
    found = parse_map(text, "pm3000.csv")
    assert found.modicon == 2
    props = {p.name: p for p in found.properties}
    assert props["Voltage L1"].visitor == {
        "register": "InputRegister",
        "offset": 0,
        "limit": 2,
        "dataType": "float32",
        "isRegisterSwap": True,
    }
    assert (props["Voltage L1"].type, props["Voltage L1"].unit) == (PropertyType.FLOAT, "V")
    energy = props["Energy"]
    assert energy.visitor == {
        "register": "HoldingRegister",
        "offset": 100,
        "limit": 2,
        "dataType": "uint32",
        "scale": 0.1,
    }
    assert energy.type is PropertyType.FLOAT and energy.access is AccessMode.READ_ONLY
    assert props["Setpoint"].type is PropertyType.INT
    assert props["Setpoint"].access is AccessMode.READ_WRITE
    assert props["Relay"].visitor == {"register": "CoilRegister", "offset": 3, "limit": 1}
    assert props["Serial"].visitor["limit"] == 4 and props["Serial"].type is PropertyType.STRING
    assert props["Alarm"].visitor["register"] == "DiscreteInputRegister"


@pytest.mark.parametrize(
    ("rows", "where"),
    [
        (["Temp,holding,abc,int16,,,,"], "line 2, column 3 (address): 'abc' is not an address"),
        (["Temp,,40001,int16,,,,", "Temp,,40002,int16,,,,"], "line 3, column 1 (name)"),
        (["Temp,register,1,int16,,,,"], "line 2, column 2 (table): 'register'"),
        (["Temp,holding,1,int17,,,,"], "line 2, column 4 (type): 'int17'"),
        (["Temp,holding,1,int16,0,,,"], "line 2, column 5 (scale)"),
        (["Temp,input,1,int16,,,rw,"], "line 2, column 7 (access): rw"),
        (["Temp,,20001,int16,,,,"], "line 2, column 3 (address): '20001' is not a Modicon"),
        (["Temp,coil,1,float32,,,,"], "line 2, column 4 (type)"),
        (["Temp,holding,65535,uint32,,,,"], "line 2, column 3 (address): 65535 + 2"),
        (["Temp,holding,1,int16"], "line 2, column 5: 4 columns"),
        (["", "Temp,holding,1,int16,,,x,"], "line 3, column 7 (access)"),
        (["Temp,holding,1,string:0,,,,"], "line 2, column 4 (type): 'string:0'"),
        ([], "line 2: no rows"),
    ],
)
def test_a_bad_row_names_its_line_and_column(rows: list[str], where: str) -> None:
    with pytest.raises(MapError) as exc:
        parse_map("\n".join([HEADER, *rows]), "vendor.csv")
    assert str(exc.value).startswith("vendor.csv: ") and where in str(exc.value), exc.value


@pytest.mark.parametrize(
    ("header", "where"),
    [
        ("", "line 1: the file is empty"),
        ("name,table,adress,type,scale,unit,access,description", "column 3: header 'adress'"),
        ("name,table,address", "the header has 3 columns"),
    ],
)
def test_a_bad_header_names_its_column(header: str, where: str) -> None:
    with pytest.raises(MapError, match=r"vendor\.csv: line 1") as exc:
        parse_map(header, "vendor.csv")
    assert where in str(exc.value)


# drafts -------------------------------------------------------------------------------------
def test_a_unit_becomes_a_draft_with_its_identity() -> None:
    unit = Unit(1, "answered", {0: b"Acme", 1: b"PM-3000", 2: b"2.1"}, server_id=b"\x01\xff")
    unit.scans[Table.HOLDING] = scan({40, 41}, 100)
    unit.scans[Table.COIL] = scan({3}, 100, table=Table.COIL)
    assert unit_annotations(unit) == {
        "edgedev/modbus-vendor-name": "Acme",
        "edgedev/modbus-product-code": "PM-3000",
        "edgedev/modbus-revision": "2.1",
        "edgedev/modbus-server-id": "0x01ff",
    }
    draft = unit_draft("gw-unit-1", unit, {"ip": "10.0.0.5", "port": 502})
    assert draft is not None
    assert draft.protocol_config == {"ip": "10.0.0.5", "port": 502, "slaveID": 1}
    assert [(p.name, p.type) for p in draft.properties] == [
        ("holding_40", PropertyType.INT),
        ("holding_41", PropertyType.INT),
        ("coil_3", PropertyType.BOOLEAN),
    ]
    assert draft.properties[0].visitor == {
        "register": "HoldingRegister",
        "offset": 40,
        "limit": 1,
        "dataType": "uint16",
    }
    assert unit_draft("empty", Unit(2, "answered"), {}) is None
