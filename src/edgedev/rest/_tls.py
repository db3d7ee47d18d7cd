"""The REST API's errors and TLS settings (no web framework needed to check them)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

from edgedev._errors import EdgedevError


class RestError(EdgedevError):
    """The REST API cannot be served (address in use, unreadable certificates)."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files of the REST API's TLS, as upstream's mapper takes them (server.go:60-100).

    A certificate and its key serve HTTPS; a CA as well makes it mutual TLS: a client must
    present a certificate the CA signed.

    Attributes:
        cert: the server's certificate (chain).
        key: its private key.
        ca: the CA that signs client certificates, for mutual TLS.
    """

    cert: str
    key: str
    ca: str | None = None

    @classmethod
    def of(cls, cert: str | None, key: str | None, ca: str | None) -> TlsFiles | None:
        """The settings of three options (``None`` when none is given: plain HTTP).

        Raises:
            RestError: an incomplete set (a key without a certificate, a CA alone ...).
        """
        if cert is None and key is None and ca is None:
            return None
        if cert is None or key is None:
            raise RestError(
                "TLS for the REST API needs --rest-cert-file and --rest-key-file (and "
                "--rest-ca-file for client certificates)"
            )
        return cls(cert, key, ca)

    def context(self) -> ssl.SSLContext:
        """The server's TLS context, to check the files before serving.

        Raises:
            RestError: a file is missing or unreadable, or the key does not match.
        """
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            raise RestError(
                f"cannot load the REST API's certificate {self.cert} with key {self.key}: {exc}"
            ) from None
        if self.ca is not None:
            try:
                context.load_verify_locations(self.ca)
            except (OSError, ssl.SSLError) as exc:
                raise RestError(f"cannot load the REST API's CA {self.ca}: {exc}") from None
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def uvicorn_options(self) -> dict[str, Any]:
        """The same settings as uvicorn takes them."""
        options: dict[str, Any] = {"ssl_certfile": self.cert, "ssl_keyfile": self.key}
        if self.ca is not None:
            options |= {"ssl_ca_certs": self.ca, "ssl_cert_reqs": ssl.CERT_REQUIRED}
        return options
