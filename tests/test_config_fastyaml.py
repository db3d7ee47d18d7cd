"""The loader's fast YAML reader gives exactly what PyYAML's safe loader gives, errors too."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgedev.config._yaml import load_all

_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["yes", "off", "0x1F", "1_000", "~", "<<", "=", "2001-12-14", ".inf"])
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(scalars.filter(lambda v: v is not None), children, max_size=4)
    ),
    max_leaves=20,
)


def _outcome(documents: Any) -> tuple[list[Any], str | None]:
    """The documents read before any error, and the error as the user sees it."""
    out: list[Any] = []
    try:
        out.extend(documents)  # keeps what was read before an error
    except yaml.YAMLError as exc:
        return out, f"{type(exc).__name__}: {exc}"
    return out, None


def _same_as_pyyaml(text: str) -> None:
    expected = _outcome(yaml.load_all(text, Loader=_SafeLoader))
    assert repr(_outcome(load_all(text))) == repr(expected)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(values, min_size=1, max_size=3), st.booleans())
def test_any_dumped_documents_read_the_same(documents: list[Any], flow: bool) -> None:
    _same_as_pyyaml(yaml.safe_dump_all(documents, default_flow_style=flow))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet="ab:-[]{},&*!<=?|>'\"#\n\t 1.%", max_size=40))
def test_any_text_reads_the_same_or_fails_the_same(text: str) -> None:
    _same_as_pyyaml(text)


@pytest.mark.parametrize(
    "text",
    [
        "a: &x [1, 2]\nb: *x\n",  # an alias is the same object
        "<<: {a: 1}\nb: 2\n",  # merge key
        "a: 1\n---\n<<: [{a: 1}, {b: 2}]\n",
        "= : 1\n",
        "? [1]\n: 2\n",  # unhashable key
        "!!set {a, b}\n",
        "a: !!binary aGVsbG8=\n",
        "t: 2001-12-14\n",
        "- !foo bar\n",  # unknown tag
        "x: yes\ny: ~\nz: 0x1F\nw: 1_000\nv: .inf\nq: 'yes'\n",
        "a: 1\na: 2\n",  # the last duplicate wins
        "",
        "---\n---\na: 1\n",
        "a: 1\n---\nb: [\n",  # a syntax error after a good document
        "a: 1\n---\nb: *q\n",  # an undefined alias
        "%YAML 1.1\n---\na: 1\n...\n---\nb\n",
    ],
)
def test_special_cases_read_the_same(text: str) -> None:
    _same_as_pyyaml(text)


def test_a_cycle_is_refused_where_pyyaml_would_build_a_recursive_object() -> None:
    """No Kubernetes resource (nor JSON) can contain itself; models would recurse on it."""
    read, error = _outcome(load_all("a: 1\n---\nb: &x {c: *x}\n"))
    assert read == [{"a": 1}]
    assert error is not None and "contains it" in error and "line 3" in error
