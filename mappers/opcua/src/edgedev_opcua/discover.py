"""``edgedev discover opcua URL``: an OPC-UA server's objects and variables as Devices.

This module imports no asyncua (the command line is built by every ``edgedev`` command);
the browse is :mod:`edgedev_opcua.browser`, the decisions :mod:`edgedev_opcua.address_space`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgedev.discover import (
    Discoverer,
    Discovery,
    Options,
    Summary,
    UsageError,
    positive_int,
    settings,
)
from edgedev.drivers import DeviceError
from edgedev_opcua.config import OpcuaProtocol
from edgedev_opcua.nodeid import NodeRef, parse_node_id
from edgedev_opcua.pathglob import PathFilter

DISCOVERY_TIMEOUT = 10_000
"""Deadline of each request while discovering, ms, unless ``--timeout`` says otherwise."""
DEFAULT_MAX_DEPTH = 10
DEFAULT_MAX_NODES = 100_000
DEFAULT_PER_REQUEST = 2000


class OpcuaDiscoverer(Discoverer):
    """Browses an OPC-UA server and makes its objects Devices, their variables properties."""

    help = "browse an OPC-UA server: objects become Devices, variables properties"
    description = """\
Browse an OPC-UA server from --root (the Objects folder, the Server object left out) and
write its objects as Devices, their variables as properties, with node ids that name the
namespace by URI (nsu=), so the file survives a server that renumbers its namespaces.

An object of an ObjectType of its own is a device of that kind, and instances with the same
variables share one DeviceModel named after the type; an object or folder holding variables
is a device with a model of its own; the variables of an object's components are its
properties, named by their path (Motor.Speed). Variables the driver cannot read (arrays,
structures) are listed on stderr with the reason.

Globs over browse-name paths: * is one level, ** any depth: --include 'Plant/Line1/**'.
Only Browse, BrowseNext and Read requests are sent."""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """The server, what to browse, and the driver's connection settings."""
        parser.add_argument("url", help="the server's endpoint, opc.tcp://HOST[:PORT][/PATH]")
        browse = parser.add_argument_group("what to browse")
        browse.add_argument(
            "--root",
            default="i=85",
            metavar="NODEID",
            help="start here (default i=85, the Objects folder); nsu=URI;s=... works",
        )
        browse.add_argument(
            "--include",
            action="append",
            default=[],
            metavar="GLOB",
            help="take only variables whose browse path (from the root) matches; repeatable",
        )
        browse.add_argument(
            "--exclude",
            action="append",
            default=[],
            metavar="GLOB",
            help="leave out variables whose browse path matches (and do not browse below "
            "an object that 'X/**' leaves out); repeatable",
        )
        browse.add_argument(
            "--max-depth",
            type=positive_int,
            default=DEFAULT_MAX_DEPTH,
            metavar="N",
            help=f"browse at most N levels below the root (default {DEFAULT_MAX_DEPTH})",
        )
        browse.add_argument(
            "--max-nodes",
            type=positive_int,
            default=DEFAULT_MAX_NODES,
            metavar="N",
            help=f"stop after N nodes, and say so (default {DEFAULT_MAX_NODES})",
        )
        browse.add_argument(
            "--per-request",
            type=positive_int,
            default=DEFAULT_PER_REQUEST,
            metavar="N",
            help=f"most nodes or values in one request (default {DEFAULT_PER_REQUEST}; the "
            "server's MaxNodesPerBrowse and MaxNodesPerRead apply when smaller)",
        )
        browse.add_argument(
            "--mode",
            choices=("poll", "subscribe"),
            default="poll",
            help="the Devices' mode: poll (Read every collectCycle, the default) or "
            "subscribe (the server pushes changes)",
        )
        connection = parser.add_argument_group("connection (as the OPC-UA driver's configData)")
        connection.add_argument(
            "--timeout",
            type=positive_int,
            metavar="MS",
            help=f"deadline of each request (default {DISCOVERY_TIMEOUT} while discovering; "
            "written into the Devices when given)",
        )
        connection.add_argument("--user", metavar="NAME", help="log in as NAME (userName)")
        connection.add_argument(
            "--password-file",
            metavar="FILE",
            help="file holding the password (the Devices get passwordFile, never the password)",
        )
        connection.add_argument(
            "--security-policy",
            default="None",
            metavar="POLICY",
            help="Basic256Sha256, Aes128Sha256RsaOaep or Aes256Sha256RsaPss (default None)",
        )
        connection.add_argument(
            "--security-mode",
            default="None",
            metavar="MODE",
            help="Sign or SignAndEncrypt, with a --security-policy (default None)",
        )
        connection.add_argument("--certificate", metavar="FILE", help="client certificate")
        connection.add_argument("--private-key", metavar="FILE", help="its private key")
        connection.add_argument(
            "--server-certificate", metavar="FILE", help="pin the server's certificate"
        )

    @staticmethod
    def device_config(args: argparse.Namespace) -> dict[str, Any]:
        """The Devices' protocol ``configData``: the connection settings given."""
        config: dict[str, Any] = {"url": args.url}
        if args.timeout is not None:
            config["timeout"] = args.timeout
        config["mode"] = args.mode
        if args.security_policy != "None" or args.security_mode != "None":
            config["securityPolicy"] = args.security_policy
            config["securityMode"] = args.security_mode
        given = {
            "certificate": args.certificate,
            "privateKey": args.private_key,
            "serverCertificate": args.server_certificate,
            "userName": args.user,
            "passwordFile": args.password_file,
        }
        config.update({key: value for key, value in given.items() if value})
        return config

    @classmethod
    def settings(cls, args: argparse.Namespace) -> tuple[OpcuaProtocol, dict[str, Any]]:
        """The connection settings checked as the driver checks them, and the Devices' own.

        Raises:
            UsageError: a setting is malformed, or settings do not go together.
        """
        written = cls.device_config(args)
        written = {**written, "url": settings(OpcuaProtocol, written).url}
        cfg = settings(OpcuaProtocol, {**written, "timeout": args.timeout or DISCOVERY_TIMEOUT})
        problems = cfg.problems()
        if problems:
            raise UsageError("; ".join(message for _, message in problems))
        if cfg.password_file is not None and not Path(cfg.password_file).expanduser().is_file():
            raise UsageError(f"--password-file {cfg.password_file}: no such file")
        return cfg, written

    async def discover(self, args: argparse.Namespace, options: Options) -> Discovery:
        """Browse the server, read the variables' attributes, make the devices."""
        cfg, written = self.settings(args)
        try:
            root: NodeRef = parse_node_id(args.root)
            paths = PathFilter.of(args.include, args.exclude)
        except ValueError as exc:
            raise UsageError(str(exc)) from None

        from edgedev_opcua.address_space import plan_devices
        from edgedev_opcua.browser import Browser
        from edgedev_opcua.connection import close_client, device_errors, open_client
        from edgedev_opcua.session import to_ua_node_id

        summary = Summary(target=cfg.url)
        client = await open_client(cfg, watchdog=cfg.timeout / 1000)
        try:
            with device_errors(cfg):
                browser = Browser(client, summary, per_request=args.per_request)
                await browser.learn_server()
                index = root.namespace
                if isinstance(index, str):
                    if index not in browser.namespaces:
                        raise DeviceError(f"{cfg.url}: --root: the server has no namespace {index}")
                    index = browser.namespaces.index(index)
                try:
                    found = await browser.tree(
                        to_ua_node_id(root, index),
                        paths=paths,
                        max_depth=args.max_depth,
                        max_nodes=args.max_nodes,
                    )
                except LookupError as exc:
                    raise DeviceError(f"{cfg.url}: --root {exc}") from None
                await browser.attributes(found)
        finally:
            await close_client(client)
        devices = plan_devices([found.root], written, paths.wants, summary)
        return Discovery(devices, summary)
