"""Pure parts of the GPIO mapper: debounce, patterns, configData schema and load-time checks."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
from gpio_helpers import device, load, model, prop, visit
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from edgedev import ConfigError
from edgedev_gpio import (
    Debouncer,
    FactoryKind,
    GpioProtocol,
    GpioVisitor,
    SimulateConfig,
    ThreadInbox,
)
from edgedev_gpio.config import factory_from_env
from edgedev_gpio.patterns import chatter, level_at, next_change

# debounce ------------------------------------------------------------------------------------


def test_the_first_edge_is_reported_at_once_and_chatter_after_it_is_bounce():
    d = Debouncer(0.05, False)
    assert d.edge(1.000, True) is True
    assert [d.edge(1.000 + i / 1000, i % 2 == 0) for i in range(1, 9)] == [None] * 8
    assert d.bounced == 8
    assert d.value is True


def test_a_release_inside_the_window_is_reported_when_the_window_ends():
    d = Debouncer(0.05, False)
    assert d.edge(1.0, True) is True
    assert d.edge(1.01, False) is None
    assert d.deadline == pytest.approx(1.05)
    assert d.settle(1.04) is None
    assert d.settle(1.05) is False
    assert d.value is False


def test_chatter_that_ends_at_the_reported_level_leaves_nothing_pending():
    d = Debouncer(0.05, True)
    assert d.edge(0.0, False) is False
    d.edge(0.001, True)
    d.edge(0.002, False)
    assert d.deadline is None
    assert d.settle(1.0) is None


def test_window_zero_reports_every_change():
    d = Debouncer(0, False)
    assert [d.edge(0.0, True), d.edge(0.0, False), d.edge(0.0, True)] == [True, False, True]


def test_a_negative_window_is_refused():
    with pytest.raises(ValueError):
        Debouncer(-1, False)


@given(
    window=st.floats(0, 0.1),
    gaps=st.lists(st.floats(0, 0.2), min_size=1, max_size=40),
)
def test_reports_alternate_and_end_at_the_last_level(window: float, gaps: list[float]):
    d = Debouncer(window, False)
    reported = [False]
    t, level = 0.0, False
    for gap in gaps:
        t += gap
        level = not level
        outs = (d.settle(t), d.edge(t, level))
        reported.extend(out for out in outs if out is not None)
    late = d.settle(t + window + 1)
    if late is not None:
        reported.append(late)
    assert all(a != b for a, b in itertools.pairwise(reported))
    assert reported[-1] == level


# patterns ------------------------------------------------------------------------------------


def test_toggle_flips_every_period():
    config = SimulateConfig(pattern="toggle", period=500)
    assert [level_at(config, t) for t in (0, 0.49, 0.5, 0.99, 1.0)] == [0, 0, 1, 1, 0]
    assert next_change(config, 0) == pytest.approx(0.5)
    assert next_change(config, 0.5) == pytest.approx(1.0)


def test_pulse_is_active_for_width_at_the_end_of_each_period():
    config = SimulateConfig(pattern="pulse", period=1000, width=200)
    assert [level_at(config, t) for t in (0, 0.79, 0.8, 0.99, 1.0, 1.85)] == [
        False,
        False,
        True,
        True,
        False,
        True,
    ]
    times = [0.0]
    for _ in range(4):
        times.append(next_change(config, times[-1]))
    assert times[1:] == pytest.approx([0.8, 1.0, 1.8, 2.0])


def test_chatter_returns_briefly_and_ends_at_the_new_level():
    config = SimulateConfig(pattern="pulse", period=1000, width=200, bounce=2)
    assert chatter(config, True) == [False, True, False, True]
    assert chatter(SimulateConfig(), True) == []


def test_a_pulse_as_wide_as_its_period_is_refused():
    with pytest.raises(ValidationError, match="shorter than period"):
        SimulateConfig(pattern="pulse", period=200, width=200)


# configData ----------------------------------------------------------------------------------


def visitor(**data: Any) -> GpioVisitor:
    return GpioVisitor.model_validate(data)


def test_a_pulled_up_input_is_active_low_unless_told_otherwise():
    assert visitor(pin=17, pull="up").effective_active_high is False
    assert visitor(pin=17, pull="down").effective_active_high is True
    assert visitor(pin=17, pull="up", activeHigh=True).effective_active_high is True
    assert visitor(pin=5, direction="out").effective_active_high is True


def test_settings_of_another_direction_are_refused():
    with pytest.raises(ValidationError, match="pwmFrequency"):
        visitor(pin=18, direction="out", pwmFrequency=100)
    with pytest.raises(ValidationError, match="pull"):
        visitor(pin=18, direction="pwm", pull="up")
    with pytest.raises(ValidationError, match="needs pin"):
        visitor(direction="in")
    with pytest.raises(ValidationError, match="channel"):
        visitor(direction="adc", pin=4)
    with pytest.raises(ValidationError):
        visitor(pin=54)
    with pytest.raises(ValidationError):
        visitor(pin=17, bounceTme=20)  # a typo is reported, not ignored


def test_pin_factory_comes_from_config_then_edgedev_env_then_gpiozero_env():
    assert factory_from_env({}) is FactoryKind.AUTO
    assert factory_from_env({"GPIOZERO_PIN_FACTORY": "mock"}) is FactoryKind.MOCK
    both = {"GPIOZERO_PIN_FACTORY": "mock", "EDGEDEV_GPIO_PIN_FACTORY": "lgpio"}
    assert factory_from_env(both) is FactoryKind.LGPIO
    with pytest.raises(ValueError, match="GPIOZERO_PIN_FACTORY='pigpio'"):
        factory_from_env({"GPIOZERO_PIN_FACTORY": "pigpio"})
    assert GpioProtocol.model_validate({"pinFactory": "rpigpio"}).factory_kind is (
        FactoryKind.RPIGPIO
    )


def panel_docs(props: list[dict[str, Any]], visits: list[dict[str, Any]], **config: Any) -> list:
    return [model("m", props), device("d", "m", visits, pinFactory="mock", **config)]


def problems(tmp_path: Path, docs: list[Any]) -> list[tuple[str | None, str]]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, docs)
    for problem in info.value.problems:
        assert problem.file.endswith(".yaml")
        assert problem.name == "default/d"
    return [(p.field, p.message) for p in info.value.problems]


def test_load_names_the_field_of_a_pin_used_twice(tmp_path: Path):
    found = problems(
        tmp_path,
        panel_docs(
            [prop("a"), prop("b")],
            [visit("a", pin=17, direction="out"), visit("b", pin=17, direction="in")],
        ),
    )
    assert found == [("spec.properties[1].visitors.configData.pin", "b uses the same pin as a")]


def test_load_names_the_field_of_a_type_that_does_not_fit_the_direction(tmp_path: Path):
    found = problems(
        tmp_path,
        panel_docs([prop("lamp", "INT")], [visit("lamp", pin=18, direction="pwm")]),
    )
    assert found[0][0] == "spec.properties[0].visitors.configData.direction"
    assert "FLOAT" in found[0][1]


def test_load_refuses_a_desired_value_on_an_input(tmp_path: Path):
    docs = panel_docs([prop("button")], [visit("button", pin=17)])
    docs[1]["spec"]["properties"][0]["desired"] = {"value": "true"}
    found = problems(tmp_path, docs)
    assert found[0][0] == "spec.properties[0].visitors.configData.direction"


def test_load_names_a_bad_pin_factory_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("EDGEDEV_GPIO_PIN_FACTORY", "pigpio")
    docs = [model("m", [prop("a")]), device("d", "m", [visit("a", pin=5, direction="out")])]
    found = problems(tmp_path, docs)
    assert found[0][0] == "spec.protocol.configData.pinFactory"


def test_load_refuses_pwm_on_the_native_factory(tmp_path: Path):
    docs = panel_docs([prop("lamp", "FLOAT")], [visit("lamp", pin=18, direction="pwm")])
    docs[1]["spec"]["protocol"]["configData"]["pinFactory"] = "native"
    found = problems(tmp_path, docs)
    assert found == [
        (
            "spec.properties[0].visitors.configData.direction",
            "the native pin factory has no PWM; use lgpio or rpigpio",
        )
    ]


# the thread inbox ----------------------------------------------------------------------------


async def test_items_put_from_other_threads_reach_the_loop_in_order():
    with ThreadInbox[int]() as inbox:

        def produce() -> None:
            for i in range(100):
                inbox.put(i)

        thread = threading.Thread(target=produce)
        thread.start()
        got: list[int] = []
        with anyio.fail_after(10):
            while len(got) < 100:
                got.extend(await inbox.get())
        thread.join()
    assert got == list(range(100))
    inbox.put(1)  # after close: dropped, never raises


def test_every_public_name_is_exported():
    import edgedev_gpio

    assert sorted(edgedev_gpio.__all__) == list(edgedev_gpio.__all__)
    for name in edgedev_gpio.__all__:
        assert getattr(edgedev_gpio, name) is not None
