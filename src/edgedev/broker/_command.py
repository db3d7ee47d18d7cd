"""``edgedev broker`` and ``python -m edgedev.broker``: the embedded broker as a command.

It prints its address once it accepts connections, and the lines that attach the other
commands to it. Listening beyond loopback it warns: without ``--password-file`` anyone who
reaches the port reads and writes every topic, and the traffic is never encrypted. For
production, run mosquitto (see docs/reliability.md, "Securing the bus").
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import logging
import sys

import anyio

from edgedev._process import run_async
from edgedev.broker._passwords import PasswordFile, add_user
from edgedev.broker._server import EmbeddedBroker

HELP = "run the embedded MQTT broker (for trying edgedev; mosquitto for production)"
LOG_LEVEL = logging.INFO


def add_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``broker``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=1883, help="TCP port; 0 lets the system choose (1883)"
    )
    parser.add_argument(
        "--persist",
        metavar="FILE",
        help="keep retained messages in FILE across restarts (default: keep nothing)",
    )
    parser.add_argument(
        "--password-file",
        metavar="FILE",
        help="accept only the users of FILE (mosquitto's password_file format, $7$ hashes; "
        "make it with --add-user or mosquitto_passwd)",
    )
    parser.add_argument(
        "--add-user",
        metavar="NAME",
        help="set NAME's password in --password-file (read from standard input, or asked "
        "for on a terminal) and exit",
    )


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` stays on this machine.

    Example:
        >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0")
        (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM (or, with ``--add-user``, set a password and exit)."""
    if args.add_user is not None:
        return _add_user(args.password_file, args.add_user)
    passwords: PasswordFile | None = None
    if args.password_file is not None:
        try:
            passwords = PasswordFile.read(args.password_file)
        except (OSError, ValueError) as exc:
            print(f"error: password file: {exc}", file=sys.stderr)
            return 1

    async def main() -> int:
        try:
            broker = EmbeddedBroker(
                args.host, args.port, persistence=args.persist, passwords=passwords
            )
            async with broker:
                print(f"edgedev broker listening on mqtt://{broker.address}", flush=True)
                if not is_loopback(args.host):
                    _warn_exposed(broker.address, passwords)
                print(
                    f"  attach: edgedev run -f FILE --broker {broker.url}\n"
                    f"          edgedev watch --broker {broker.url}\n"
                    "  Ctrl-C stops",
                    flush=True,
                )
                await anyio.sleep_forever()
        except OSError as exc:
            print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 1
        return 0

    return run_async(main)


def _warn_exposed(address: str, passwords: PasswordFile | None) -> None:
    if passwords is None:
        print(
            f"warning: listening on {address}, reachable from other machines, with no "
            "--password-file: anyone who reaches it reads and writes every topic",
            file=sys.stderr,
            flush=True,
        )
    print(
        "warning: the embedded broker does not encrypt (no TLS): user names, passwords and "
        "values cross the network in clear; use mosquitto with TLS in production",
        file=sys.stderr,
        flush=True,
    )


def _add_user(path: str | None, name: str) -> int:
    if path is None:
        print("error: --add-user needs --password-file FILE", file=sys.stderr)
        return 2
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {name}: ")
        if getpass.getpass("again: ") != password:
            print("error: the two passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("error: empty password", file=sys.stderr)
        return 1
    try:
        add_user(path, name, password)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"set the password of {name} in {path}")
    return 0
