"""What every command shares: options, and loading files."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import replace

from edgedev._errors import ConfigError, PluginError, Problem
from edgedev.bus import DEFAULT_BROKER, DEFAULT_ROOT, BrokerConfigError, BrokerURL
from edgedev.config import DeviceSpec
from edgedev.loader import load_devices

log = logging.getLogger("edgedev.cli")


_SECURITY_ENV = {
    "ca_file": "EDGEDEV_CA_FILE",
    "cert_file": "EDGEDEV_CERT_FILE",
    "key_file": "EDGEDEV_KEY_FILE",
    "username": "EDGEDEV_USERNAME",
    "password_file": "EDGEDEV_PASSWORD_FILE",
}


def add_bus_options(parser: argparse.ArgumentParser, *, embedded: bool = False) -> None:
    """``--broker``, ``--topic-root`` and the broker's security options.

    Every command that talks MQTT takes them. :func:`resolve_bus_options` turns them into one
    :class:`BrokerURL` in ``args.broker`` after parsing. With ``embedded`` (``edgedev demo``)
    the broker defaults to none, meaning the command's embedded broker, and
    ``EDGEDEV_BROKER``/``EDGEDEV_TOPIC_ROOT`` are not read.
    """
    if embedded:
        parser.set_defaults(broker_fallback=None)
        broker_help = "use this broker instead of the embedded one"
    else:
        parser.set_defaults(broker_fallback=os.environ.get("EDGEDEV_BROKER", DEFAULT_BROKER))
        broker_help = (
            f"MQTT broker, mqtt://HOST:PORT or mqtts://HOST:PORT for TLS (env EDGEDEV_BROKER, "
            f"default {DEFAULT_BROKER})"
        )
    parser.add_argument("--broker", default=None, metavar="URL", help=broker_help)
    root_default = DEFAULT_ROOT if embedded else os.environ.get("EDGEDEV_TOPIC_ROOT", DEFAULT_ROOT)
    parser.add_argument(
        "--topic-root",
        default=root_default,
        metavar="ROOT",
        help=f"topic root ({'' if embedded else 'env EDGEDEV_TOPIC_ROOT, '}default {DEFAULT_ROOT})",
    )
    max_env = "" if embedded else " (env EDGEDEV_MAX_PACKET_SIZE)"
    parser.add_argument(
        "--max-packet-size",
        type=packet_size,
        default=None,
        metavar="BYTES",
        help="the largest MQTT packet the broker takes, for a broker whose limit is under the "
        "default of 16 MiB (mosquitto's max_packet_size): a bigger message is dropped and "
        f"counted, never sent{max_env}",
    )
    group = parser.add_argument_group("broker security (mqtts:// and credentials)")
    group.add_argument(
        "--ca-file",
        metavar="PEM",
        help="CA certificate(s) that signed the broker's certificate; the system's trust store "
        "when absent (env EDGEDEV_CA_FILE)",
    )
    group.add_argument(
        "--cert-file",
        metavar="PEM",
        help="client certificate, for brokers that require one (env EDGEDEV_CERT_FILE)",
    )
    group.add_argument(
        "--key-file",
        metavar="PEM",
        help="private key of --cert-file (env EDGEDEV_KEY_FILE)",
    )
    group.add_argument("--username", metavar="NAME", help="MQTT user name (env EDGEDEV_USERNAME)")
    group.add_argument(
        "--password-file",
        metavar="FILE",
        help="file holding the MQTT password, read at every connection attempt (env "
        "EDGEDEV_PASSWORD_FILE; or the password itself in env EDGEDEV_PASSWORD; never on the "
        "command line)",
    )
    group.add_argument(
        "--tls-insecure",
        action="store_true",
        default=os.environ.get("EDGEDEV_TLS_INSECURE", "") not in ("", "0", "false"),
        help="do not check that the broker's certificate names its host (the chain is still "
        "verified); for tests only (env EDGEDEV_TLS_INSECURE=1)",
    )


def resolve_bus_options(args: argparse.Namespace) -> int | None:
    """Replace ``args.broker`` by a checked :class:`BrokerURL` with its security settings.

    Prints one line and returns the exit code when the settings are wrong: 2 for a malformed
    URL, 1 for settings that can never work (a CA file that does not exist, a key that does
    not match its certificate). Returns ``None`` when all is well, or when ``args`` has no
    broker options. Warns when a password is given inside ``--broker`` (other users of the
    machine can read it in the process list).
    """
    if not hasattr(args, "broker_fallback"):
        return None
    given = args.broker
    text = given if given is not None else args.broker_fallback
    if text is None:
        return None  # demo: its own embedded broker
    if isinstance(text, BrokerURL):
        return None  # already resolved
    try:
        url = BrokerURL.parse(text)
    except ValueError as exc:
        source = "--broker" if given is not None else "EDGEDEV_BROKER"
        print(f"error: {source}: {exc}", file=sys.stderr)
        return 2
    if given is not None and url.password is not None:
        log.warning(
            "the password given in --broker is visible to every user of this machine in the "
            "process list: use --password-file, EDGEDEV_PASSWORD_FILE or EDGEDEV_PASSWORD"
        )

    def pick(name: str) -> str | None:
        value: str | None = getattr(args, name) or os.environ.get(_SECURITY_ENV[name]) or None
        return value

    max_packet_size = args.max_packet_size
    env = os.environ.get("EDGEDEV_MAX_PACKET_SIZE") if args.broker_fallback is not None else None
    if max_packet_size is None and env:
        try:
            max_packet_size = packet_size(env)
        except argparse.ArgumentTypeError as exc:
            print(f"error: EDGEDEV_MAX_PACKET_SIZE: {exc}", file=sys.stderr)
            return 2
    password_file = pick("password_file")
    url = replace(
        url,
        ca_file=pick("ca_file"),
        cert_file=pick("cert_file"),
        key_file=pick("key_file"),
        username=pick("username") or url.username,
        password_file=password_file,
        password=(None if password_file else os.environ.get("EDGEDEV_PASSWORD")) or url.password,
        tls_insecure=bool(args.tls_insecure),
        max_packet_size=max_packet_size,
    )
    try:
        url.check()
    except BrokerConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if url.tls_insecure:
        log.warning(
            "--tls-insecure: the broker's host name is NOT checked against its certificate; "
            "anyone holding a certificate from the same CA can pose as %s",
            url,
        )
    args.broker = url
    return None


def port_number(text: str) -> int:
    """A TCP port given on the command line (``0``: any free port), for argparse's ``type``.

    Raises:
        argparse.ArgumentTypeError: not a number from 0 to 65535.
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {value}")
    return value


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration(text: str) -> float:
    """Seconds given as ``90``, ``90s``, ``30m``, ``12h`` or ``7d``, for argparse's ``type``.

    Raises:
        argparse.ArgumentTypeError: not a duration, or negative.
    """
    number, unit = (text[:-1], text[-1]) if text[-1:] in _UNITS else (text, "s")
    try:
        value = float(number) * _UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (seconds, or a number with s, m, h or d)"
        ) from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def megabytes(text: str) -> float:
    """A size in MiB (fractions allowed; ``0``: no bound), for argparse's ``type``.

    Raises:
        argparse.ArgumentTypeError: not a number, or negative.
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size in MiB: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


MAX_MQTT_PACKET = 268_435_455 + 5
"""The largest packet MQTT can carry: a remaining length of 256 MiB - 1, and its header."""


def packet_size(text: str) -> int:
    """A packet size in bytes (``65536``), for argparse's ``type``.

    Raises:
        argparse.ArgumentTypeError: not a whole number of bytes from 1 to MQTT's largest.
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of bytes: {text!r}") from None
    if not 1 <= value <= MAX_MQTT_PACKET:
        raise argparse.ArgumentTypeError(
            f"must be from 1 to {MAX_MQTT_PACKET} bytes (MQTT's largest packet): {text!r}"
        )
    return value


def add_file_option(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``-f FILE...``: Device and DeviceModel YAML files (repeatable)."""
    parser.add_argument(
        "-f",
        "--file",
        dest="files",
        action="extend",
        nargs="+",
        required=required,
        default=[],
        metavar="FILE",
        help="Device and DeviceModel YAML files",
    )


def load_or_report(
    files: Sequence[str], warnings: list[Problem] | None = None, cache: str | None = None
) -> list[DeviceSpec] | None:
    """Load ``files``; print every problem to stderr and return ``None`` when invalid.

    ``warnings`` receives what loads but deserves a look (logged when not given); ``cache``
    is the loader's cache directory, if any.
    """
    try:
        return load_devices(files, warnings=warnings, cache=cache)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        count = len(exc.problems)
        print(f"{count} problem{'s' if count != 1 else ''} found", file=sys.stderr)
        return None
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
