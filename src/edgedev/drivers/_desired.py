"""The one rule for desired values, applied before anything is stored or written. Pure.

The twin agent (for the devices of its files), the mapper's desired writer (every delta,
``twin/get`` answer and DMI desired value), the mapper's REST API and ``edgedev validate``
all call :func:`check_desired`, so that a desired value is refused at once, with the reason,
wherever it comes in, and never accepted when no report could ever carry it back (it would
stay pending for good). A value is taken when:

1. the property exists and is ``ReadWrite``;
2. it is a value of the property's type, finite, within ``minimum``/``maximum``
   (:func:`~edgedev.twin.check_value`);
3. its text is one a report carries back (the mapper reports a value equal to the desired one
   in the desired value's own text, since EdgeCore compares strings): no white space, a
   BOOLEAN ``true`` or ``false``, an INT in base-10 digits, EdgeCore's characters only
   (:func:`~edgedev.wire.desired_refusal`);
4. the device holds exactly that value once written (the driver's
   :meth:`~edgedev.drivers.Driver.held_value`: a register under a ``scale``, an integer
   range, a float32): else it is refused, naming the nearest value it holds.
"""

from __future__ import annotations

from typing import Any

from edgedev._errors import WriteRefused
from edgedev.config._spec import PropertySpec
from edgedev.drivers._base import Driver
from edgedev.twin._values import Value, check_value, check_writable, format_value, values_equal
from edgedev.wire import desired_refusal


def check_desired(
    device_id: str,
    name: str,
    prop: PropertySpec | None,
    text: str,
    driver: type[Driver[Any, Any]] | None = None,
) -> Value:
    """Check desired value ``text`` of property ``name`` of ``device_id``; its typed value.

    Args:
        device_id: the device, for the messages.
        name: the property's name.
        prop: the property, ``None`` when the device has none of that name.
        text: the desired value's wire string.
        driver: the device's driver, whose :meth:`~edgedev.drivers.Driver.held_value` says
            what the device holds; without one, the device is taken to hold any value.

    Raises:
        NoSuchProperty: the device has no such property.
        WriteRefused: refused by the rule above; the message names the property, says why
            and, where one exists, the value to give instead.
    """
    target = check_writable(device_id, name, prop)
    try:
        return desired_value(target, text, driver)
    except ValueError as exc:
        raise WriteRefused(f"{name}: {exc}") from None


def desired_value(
    prop: PropertySpec, text: str, driver: type[Driver[Any, Any]] | None = None
) -> Value:
    """Rules 2 to 4 for desired value ``text`` of ``prop`` (not whether it is writable).

    Raises:
        ValueError: refused; the message says why, without the property's name.
    """
    type_ = prop.type
    value = check_value(text, type_, prop.minimum, prop.maximum)
    why = desired_refusal(text, type_.value)
    if why is not None:
        raise ValueError(why)
    if driver is None:
        return value
    try:
        held = driver.held_value(prop, value)
    except (ValueError, WriteRefused) as exc:
        raise ValueError(f"{text} cannot be written: {exc}") from None
    if not values_equal(held, value, type_):
        raise ValueError(
            f"the device cannot hold {text} exactly; the nearest value it holds "
            f"is {format_value(held, type_)}"
        )
    return value
