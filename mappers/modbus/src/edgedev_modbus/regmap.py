"""Vendor register maps (CSV) to properties, the way Modbus devices are really described.

The header is ``name,table,address,type,scale,unit,access,description``, optionally followed
by ``byteorder,wordorder``:

* ``table``: ``coil``, ``discrete``, ``input`` or ``holding``; ``address`` is then the
  zero-based protocol address. With ``table`` empty, ``address`` is in Modicon notation
  (``40001`` is holding register 0; ``00001`` coil 0, ``10001`` discrete input 0,
  ``30001`` input register 0; six digits, ``400001``, reach address 65535);
* ``type``: ``bool``, ``int16``, ``uint16``, ``int32``, ``uint32``, ``int64``, ``uint64``,
  ``float32``, ``float64``, or ``string:N`` (N registers, two characters each);
* ``scale`` multiplies the value read (empty: 1); ``access`` is ``r`` (empty) or ``rw``;
* ``byteorder`` (the bytes in each register) and ``wordorder`` (the registers of a value),
  ``big`` (empty) or ``little``.

Every problem is an error naming the file, the line and the column: nothing is made of a
file with one bad row. No I/O here: the caller reads the file.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from edgedev.discover import PropertyDraft
from edgedev.drivers import AccessMode
from edgedev.twin import PropertyType, check_scale
from edgedev_modbus.codec import DataType, Table, check_layout, register_count
from edgedev_modbus.found import TABLES

COLUMNS = ("name", "table", "address", "type", "scale", "unit", "access", "description")
ORDER_COLUMNS = ("byteorder", "wordorder")
MAX_ROWS = 65_536
"""Most rows a map may have (one per address of a table, and more would be a mistake)."""
_MODICON = {0: Table.COIL, 1: Table.DISCRETE_INPUT, 3: Table.INPUT, 4: Table.HOLDING}
_TYPES = {t.value: t for t in DataType if t not in (DataType.STRING, DataType.BYTES)}
_TYPES["bool"] = DataType.BOOLEAN
del _TYPES["boolean"]


class MapError(ValueError):
    """A register map is wrong; the message names the file, the line and the column."""


@dataclass(frozen=True, slots=True)
class RegisterMap:
    """The properties of a map, and what the summary says of it.

    Attributes:
        properties: a property per row, in the file's order.
        modicon: how many rows gave a Modicon address (``40001``), converted.
    """

    properties: list[PropertyDraft]
    modicon: int


@dataclass(frozen=True, slots=True)
class _Row:
    cells: dict[str, str]
    line: int
    source: str
    header: tuple[str, ...]

    def fail(self, column: str, message: str) -> MapError:
        number = self.header.index(column) + 1
        return MapError(f"{self.source}: line {self.line}, column {number} ({column}): {message}")


def modicon(text: str) -> tuple[Table, int]:
    """The table and zero-based address of a Modicon address (``40001`` is holding 0).

    Raises:
        ValueError: it is not one (5 or 6 digits, first digit 0, 1, 3 or 4, then 1 on).
    """
    if not (text.isdigit() and len(text) in (5, 6)):
        raise ValueError(
            f"{text!r} is not a Modicon address (5 or 6 digits: 40001 is holding register 0)"
        )
    table = _MODICON.get(int(text[0]))
    number = int(text[1:])
    if table is None or not 1 <= number <= 65536:
        raise ValueError(
            f"{text!r} is not a Modicon address: 0xxxx coils, 1xxxx discrete inputs, 3xxxx "
            "input registers, 4xxxx holding registers, counted from 1"
        )
    return table, number - 1


def _address(row: _Row) -> tuple[Table, int, bool]:
    text = row.cells["address"].strip()
    word = row.cells["table"].strip().lower()
    if not word:
        try:
            table, address = modicon(text)
        except ValueError as exc:
            raise row.fail("address", f"{exc} (or give the table)") from None
        return table, address, True
    table_of = TABLES.get(word)
    if table_of is None:
        raise row.fail("table", f"{word!r} is not coil, discrete, input or holding")
    try:
        address = int(text, 0)
    except ValueError:
        raise row.fail("address", f"{text!r} is not an address (0 to 65535)") from None
    if not 0 <= address <= 65535:
        raise row.fail("address", f"{address} is not an address (0 to 65535)")
    return table_of, address, False


def _type(row: _Row, table: Table) -> tuple[DataType, int]:
    text = row.cells["type"].strip().lower()
    if text.startswith("string:"):
        count = text.partition(":")[2]
        if not count.isdigit() or not 1 <= int(count) <= 125:
            raise row.fail("type", f"{text!r}: string:N takes N registers, 1 to 125")
        data_type, limit = DataType.STRING, int(count)
    elif text in _TYPES:
        data_type = _TYPES[text]
        limit = register_count(data_type, 1)
    else:
        names = ", ".join([*_TYPES, "string:N"])
        raise row.fail("type", f"{text!r} is not a type ({names})")
    try:
        check_layout(data_type, table, limit)
    except ValueError as exc:
        raise row.fail("type", str(exc)) from None
    return data_type, limit


def _scale(row: _Row) -> float:
    text = row.cells["scale"].strip()
    if not text:
        return 1.0
    try:
        scale = float(text)
        check_scale(scale)
    except ValueError as exc:
        raise row.fail("scale", f"{text!r}: {exc}") from None
    return scale


def _order(row: _Row, column: str) -> bool:
    """Whether ``byteorder``/``wordorder`` is little (the swap); big when empty or absent."""
    text = row.cells.get(column, "").strip().lower()
    if text in ("", "big"):
        return False
    if text == "little":
        return True
    raise row.fail(column, f"{text!r} is not big or little")


def _property(row: _Row) -> tuple[PropertyDraft, bool]:
    name = row.cells["name"].strip()
    if not name:
        raise row.fail("name", "every row needs a name")
    table, address, converted = _address(row)
    data_type, limit = _type(row, table)
    if address + limit > 65536:
        raise row.fail("address", f"{address} + {limit} registers runs past address 65535")
    scale = _scale(row)
    access = row.cells["access"].strip().lower() or "r"
    if access not in ("r", "rw"):
        raise row.fail("access", f"{access!r} is not r or rw")
    if access == "rw" and not table.writable:
        raise row.fail("access", f"rw: clients cannot write {table} (only coils and holding)")
    if data_type is DataType.BOOLEAN:
        type_ = PropertyType.BOOLEAN
    elif data_type is DataType.STRING:
        type_ = PropertyType.STRING
    elif data_type in (DataType.FLOAT32, DataType.FLOAT64) or not float(scale).is_integer():
        type_ = PropertyType.FLOAT
    else:
        type_ = PropertyType.INT
    visitor: dict[str, object] = {"register": table.value, "offset": address, "limit": limit}
    if not table.is_bit:
        visitor["dataType"] = data_type.value
    if scale != 1:
        visitor["scale"] = int(scale) if float(scale).is_integer() else scale
    if _order(row, "byteorder"):
        visitor["isSwap"] = True
    if _order(row, "wordorder"):
        visitor["isRegisterSwap"] = True
    description = row.cells["description"].strip()
    draft = PropertyDraft(
        name=name,
        type=type_,
        visitor=visitor,
        access=AccessMode.READ_WRITE if access == "rw" else AccessMode.READ_ONLY,
        description=description,
        unit=row.cells["unit"].strip(),
    )
    return draft, converted


def parse_map(text: str, source: str) -> RegisterMap:
    """The properties of the register map ``text`` (a CSV file's content).

    Args:
        text: the file's text.
        source: the file's name, for messages.

    Raises:
        MapError: the header or a row is wrong; the message names the line and column.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = tuple(cell.strip().lower() for cell in next(reader))
    except StopIteration:
        raise MapError(
            f"{source}: line 1: the file is empty (expected {','.join(COLUMNS)})"
        ) from None
    except csv.Error as exc:
        raise MapError(f"{source}: line 1: {exc}") from None
    if header not in (COLUMNS, COLUMNS + ORDER_COLUMNS):
        for number, (found, want) in enumerate(
            zip(header, COLUMNS + ORDER_COLUMNS, strict=False), start=1
        ):
            if found != want:
                raise MapError(
                    f"{source}: line 1, column {number}: header {found!r}, expected {want!r} "
                    f"(the header is {','.join(COLUMNS)}[,{','.join(ORDER_COLUMNS)}])"
                )
        raise MapError(
            f"{source}: line 1: the header has {len(header)} columns, expected "
            f"{','.join(COLUMNS)}, optionally followed by {','.join(ORDER_COLUMNS)}"
        )
    properties: list[PropertyDraft] = []
    names: dict[str, int] = {}
    converted = 0
    try:
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(properties) >= MAX_ROWS:
                raise MapError(f"{source}: line {line}: more than {MAX_ROWS} rows")
            row = _Row(dict(zip(header, cells, strict=False)), line, source, header)
            if len(cells) != len(header):
                raise MapError(
                    f"{source}: line {line}, column {min(len(cells), len(header)) + 1}: "
                    f"{len(cells)} columns, the header has {len(header)}"
                )
            draft, modicon_address = _property(row)
            if draft.name in names:
                raise row.fail("name", f"{draft.name!r} is on line {names[draft.name]} already")
            names[draft.name] = line
            properties.append(draft)
            converted += modicon_address
    except csv.Error as exc:
        raise MapError(f"{source}: line {reader.line_num}: {exc}") from None
    if not properties:
        raise MapError(f"{source}: line 2: no rows after the header")
    return RegisterMap(properties, converted)
