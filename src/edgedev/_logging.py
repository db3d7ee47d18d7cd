"""How the command line logs: one human line per event by default, JSON for log collectors.

The long-running commands (``run``, ``agent``, ``simulate``, ``broker``) log at INFO by default,
so that a mapper started in a terminal says what it does: started, connected, each device
online or offline with the reason, a summary every few minutes, stopped. The others log
warnings only. ``-q`` keeps warnings only everywhere, ``-v`` adds edgedev's debug lines and
``-vv`` the libraries' too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from typing import Final

FORMATS: Final = ("text", "json")
"""Values of ``--log-format``."""

_LIBRARIES: Final = (
    "pymodbus",
    "asyncua",
    "bleak",
    "gpiozero",
    "paho",
    "urllib3",
    "httpx",
    "httpcore",
)
"""Loggers of the protocol and client libraries: they speak only at -vv (edgedev logs device
faults and push target failures once; httpx would log every POST, its URL with it)."""


def add_logging_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """``-v``, ``-q`` and ``--log-format`` on ``parser``.

    They are accepted before and after the command name (``edgedev -q run`` and
    ``edgedev run -q``); ``top`` is true for the main parser, which sets the defaults.
    """
    default = (lambda value: value) if top else (lambda _value: argparse.SUPPRESS)
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default(0),
        help="more logging: -v adds edgedev's debug lines, -vv the libraries' too",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=default(False), help="log warnings only"
    )
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        default=default("text"),
        help="text (one line per event, for people) or json (one object per line)",
    )


class _TextFormatter(logging.Formatter):
    """``12:00:01 device demo/meter-1 online``; warnings and errors say so after the time."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = dt.datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        text = f"{stamp} {level}{record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(
    verbosity: int = 0,
    *,
    quiet: bool = False,
    log_format: str = "text",
    default: int = logging.WARNING,
) -> None:
    """Log to stderr at ``default`` (a command's own level), WARNING with ``quiet``.

    Args:
        verbosity: the count of ``-v``: 1 is edgedev's DEBUG, 2 the libraries' too.
        quiet: warnings and errors only.
        log_format: ``text`` or ``json``.
        default: the level of the command when neither ``-v`` nor ``-q`` is given.
    """
    level = logging.WARNING if quiet else default
    if verbosity:
        level = logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if log_format == "json" else _TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    libraries = logging.DEBUG if verbosity >= 2 else max(level, logging.WARNING)
    for name in _LIBRARIES:
        logging.getLogger(name).setLevel(libraries)
    if verbosity < 2:
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # we log device faults once
