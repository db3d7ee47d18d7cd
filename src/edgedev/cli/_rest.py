"""``edgedev run``'s REST API options: KubeEdge mapper-framework's API over the mapper."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from edgedev.cli._common import port_number

if TYPE_CHECKING:
    from edgedev.mapper import Mapper
    from edgedev.rest import RestServer

REST_HOST = "127.0.0.1"
UPSTREAM_PORT = 7777
NO_REST_EXTRA = "error: --rest-port needs Starlette and uvicorn: pip install 'edgedev[web]'"


def add_rest_options(parser: argparse.ArgumentParser) -> None:
    """``--rest-port``, ``--rest-host`` and the TLS files of the REST API (docs/rest-api.md)."""
    group = parser.add_argument_group(
        "REST API (KubeEdge mapper-framework's routes; needs edgedev[web])"
    )
    env = os.environ.get
    group.add_argument(
        "--rest-port",
        type=port_number,
        default=env("EDGEDEV_REST_PORT") or None,  # argparse applies type
        metavar="PORT",
        help="serve the mapper's REST API (/api/v1/...) on PORT (env EDGEDEV_REST_PORT; off by "
        f"default; KubeEdge's mappers use {UPSTREAM_PORT})",
    )
    group.add_argument(
        "--rest-host",
        default=env("EDGEDEV_REST_HOST", REST_HOST),
        metavar="HOST",
        help="address the REST API listens on (env EDGEDEV_REST_HOST; default "
        f"{REST_HOST}: it writes devices; 0.0.0.0 with TLS and client certificates)",
    )
    group.add_argument(
        "--rest-cert-file",
        default=env("EDGEDEV_REST_CERT_FILE"),
        metavar="PEM",
        help="serve HTTPS with this certificate (env EDGEDEV_REST_CERT_FILE)",
    )
    group.add_argument(
        "--rest-key-file",
        default=env("EDGEDEV_REST_KEY_FILE"),
        metavar="PEM",
        help="the certificate's private key (env EDGEDEV_REST_KEY_FILE)",
    )
    group.add_argument(
        "--rest-ca-file",
        default=env("EDGEDEV_REST_CA_FILE"),
        metavar="PEM",
        help="require client certificates signed by this CA: mutual TLS (env EDGEDEV_REST_CA_FILE)",
    )


def rest_server(args: argparse.Namespace, mapper: Mapper) -> RestServer | None:
    """The REST server the options ask for (``None`` without ``--rest-port``).

    Raises:
        ImportError: ``edgedev[web]`` is not installed.
        RestError: the TLS options are incomplete.
    """
    if args.rest_port is None:
        return None
    from edgedev.rest import RestServer, TlsFiles

    tls = TlsFiles.of(args.rest_cert_file, args.rest_key_file, args.rest_ca_file)
    return RestServer(mapper, host=args.rest_host, port=args.rest_port, tls=tls)
