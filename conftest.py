"""Every test under this tree: the fixtures of edgedev.testing, and what a test needs to run.

``pip install -r requirements.txt`` installs everything the suite uses: edgedev with its
extras, every mapper under ``mappers/`` and the example driver under ``examples/``. With only
``pip install -e .[test]`` the tests that need more are skipped, each saying what to install:

- a test module that imports one of :data:`INSTALL`'s modules (directly or through a helper)
  is skipped whole when that module is missing;
- a test that needs one only while it runs (it loads a Modbus Device, whose driver the
  ``edgedev-modbus`` mapper brings) says so with ``@pytest.mark.needs("edgedev_modbus")``
  (``pytestmark`` for a whole module).

``EDGEDEV_TEST_COMPLETE=1`` (``.ci/run`` sets it) turns these skips into failures: the full
run installs everything, and must run every test.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Final

import pytest

pytest_plugins = ("edgedev.testing",)

INSTALL: Final = {
    "edgedev_modbus": "pip install -e mappers/modbus",
    "edgedev_opcua": "pip install -e mappers/opcua",
    "edgedev_ble": "pip install -e mappers/ble",
    "edgedev_gpio": "pip install -e mappers/gpio",
    "edgedev_mqtt": "pip install -e mappers/mqtt",
    "edgedev_linetcp": "pip install -e examples/edgedev-example-driver",
    "mkdocs": "pip install -e '.[docs]'",
    "starlette": "pip install -e '.[web]'",
    "uvicorn": "pip install -e '.[web]'",
    "redis": "pip install -e '.[redis]'",
    "asyncmy": "pip install -e '.[mysql]'",
    "opentelemetry": "pip install -e '.[otel]'",
}
"""Modules the suite uses beyond the ``[test]`` extra, and how to install each."""

COMPLETE_ENV: Final = "EDGEDEV_TEST_COMPLETE"


def _missing(module: str) -> None:
    """Skip (or, with ``EDGEDEV_TEST_COMPLETE=1``, fail) for want of ``module``."""
    reason = (
        f"{module} is not installed: {INSTALL[module]} "
        "(pip install -r requirements.txt installs everything)"
    )
    if os.environ.get(COMPLETE_ENV) == "1":
        pytest.fail(f"{reason}; {COMPLETE_ENV}=1 says every test must run", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


class _Module(pytest.Module):
    """A test module that is skipped, saying what to install, when it imports a missing one."""

    def _getobj(self) -> Any:
        try:
            return super()._getobj()
        except pytest.Collector.CollectError as exc:
            cause = exc.__cause__
            if isinstance(cause, ModuleNotFoundError) and cause.name is not None:
                top = cause.name.partition(".")[0]
                if top in INSTALL:
                    _missing(top)
            raise


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.Module:
    """Collect every test module as a :class:`_Module`."""
    module: pytest.Module = _Module.from_parent(parent, path=module_path)
    return module


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a test marked ``needs(module, ...)`` when one of the modules is missing."""
    for mark in item.iter_markers("needs"):
        for module in mark.args:
            if module not in INSTALL:
                raise ValueError(f"needs({module!r}): not in conftest.INSTALL")
            if importlib.util.find_spec(module) is None:
                _missing(module)


@pytest.fixture(autouse=True)
def _command_line_logging_undone() -> Any:
    """Take back the stderr handler an in-process command line installs (``setup_logging``).

    Left on the root logger, it would write to a stream pytest has since closed, and every
    later test's log line would become a "Logging error" on the real stderr.
    """
    import logging

    root = logging.getLogger()
    level = root.level
    yield
    for handler in list(root.handlers):
        if type(handler) is logging.StreamHandler:  # pytest's own are subclasses
            root.removeHandler(handler)
    root.setLevel(level)
