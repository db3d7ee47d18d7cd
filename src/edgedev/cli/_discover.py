"""``edgedev discover PROTOCOL ...``: DeviceModels and Devices from a live target.

Each protocol's discoverer (entry points ``edgedev.discoverers``) adds its target and
options and finds the devices; this command adds the shared options, names and builds the
documents, checks them as ``edgedev validate`` would, writes them whole (stdout, or ``-o
FILE`` replaced in one step) and tells on stderr what was done. Exit codes: 0 done, 1 the
target cannot be reached (one line says why), 2 a usage mistake.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from edgedev._errors import ConfigError, DeviceError, PluginError
from edgedev._logging import add_logging_options
from edgedev._process import run_async
from edgedev.discover import (
    DEFAULT_CYCLE,
    Discovery,
    Options,
    UsageError,
    build_documents,
    discoverers,
    documents_yaml,
    positive_int,
    summary_text,
)
from edgedev.loader import load_resources

HELP = "find the devices of a live server or bus and write their Devices and DeviceModels"

_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
USAGE = 2
UNREACHABLE = 1


def _namespace(text: str) -> str:
    if not _NAMESPACE.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a Kubernetes namespace (lower-case letters, digits and -, at most 63)"
        )
    return text


def _add_shared(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output (every protocol)")
    group.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write the YAML to FILE, replaced in one step once complete (default: stdout)",
    )
    group.add_argument(
        "--namespace",
        type=_namespace,
        default="default",
        help="metadata.namespace of the Devices and DeviceModels (default: default)",
    )
    group.add_argument(
        "--node-name", metavar="NODE", help="spec.nodeName of the Devices: the edge node"
    )
    group.add_argument(
        "--collect-cycle",
        type=positive_int,
        default=DEFAULT_CYCLE,
        metavar="MS",
        help=f"collectCycle of the properties (default: {DEFAULT_CYCLE}); a property the "
        "device samples more slowly gets the device's own interval",
    )
    group.add_argument(
        "--name-prefix",
        default="",
        metavar="TEXT",
        help="put TEXT before every Device and DeviceModel name (plant1-)",
    )


def add_parser(parser: argparse.ArgumentParser) -> None:
    """A sub-command per installed discoverer, each with the shared options."""
    sub = parser.add_subparsers(dest="protocol", required=True, metavar="PROTOCOL")
    for name in discoverers.names():
        try:
            discoverer = discoverers.get(name)
        except PluginError as exc:  # a broken plugin must not take the command line down
            broken = sub.add_parser(name, help=f"unavailable: {exc}")
            broken.set_defaults(discover_error=str(exc))
            continue
        command = sub.add_parser(
            name,
            help=discoverer.help,
            description=discoverer.description or discoverer.help,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_logging_options(command, top=False)
        discoverer.add_arguments(command)
        _add_shared(command)


def _options(args: argparse.Namespace) -> Options:
    return Options(
        namespace=args.namespace,
        node_name=args.node_name or None,
        collect_cycle=args.collect_cycle,
        name_prefix=args.name_prefix,
    )


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a file beside it, renamed over it when complete.

    Raises:
        OSError: the directory cannot be written; ``path`` is then untouched.
    """
    directory = path.parent
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _finish(
    protocol: str, args: argparse.Namespace, discovery: Discovery, options: Options, seconds: float
) -> int:
    """Build, check and write the documents; print the summary."""
    summary = discovery.summary
    if discovery.listing is not None:
        for line in discovery.listing:
            print(line)
        print(f"found on {summary.target} in {seconds:.1f} s", file=sys.stderr)
        for line in summary.lines:
            print(f"  {line}", file=sys.stderr)
        return 0
    made = build_documents(protocol, discovery.devices, options)
    try:
        load_resources(made.documents, source=f"edgedev discover {protocol}")
    except (ConfigError, PluginError) as exc:
        print(
            f"error: the documents made from {summary.target} do not validate, so none were "
            f"written (a fault of the {protocol} discoverer):\n{exc}",
            file=sys.stderr,
        )
        return 1
    text = documents_yaml(
        made.documents,
        comment=[
            f"Found by edgedev discover {protocol} on {summary.target}:",
            "a draft to review (names, cycles, which properties to keep).",
        ],
    )
    if args.output and args.output != "-":
        try:
            write_atomically(Path(args.output), text)
        except OSError as exc:
            print(f"error: {args.output}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    print(summary_text(summary, made, seconds), file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    """Discover, then write the documents and the summary."""
    broken = getattr(args, "discover_error", None)
    if broken is not None:
        print(f"error: {broken}", file=sys.stderr)
        return 1
    protocol: str = args.protocol
    options = _options(args)
    discoverer = discoverers.get(protocol)()
    finished = False

    async def main() -> int:
        nonlocal finished
        start = time.monotonic()
        try:
            discovery = await discoverer.discover(args, options)
        except UsageError as exc:
            finished = True
            print(f"edgedev discover {protocol}: error: {exc}", file=sys.stderr)
            return USAGE
        except (DeviceError, OSError, TimeoutError) as exc:
            finished = True
            print(f"error: {exc or type(exc).__name__}", file=sys.stderr)
            return UNREACHABLE
        finished = True
        return _finish(protocol, args, discovery, options, time.monotonic() - start)

    code = run_async(main)
    if not finished:
        print("interrupted: nothing written", file=sys.stderr)
        return 130
    return code
