"""Broker addresses and their security: ``mqtt://HOST[:PORT]``, or ``mqtts://`` for TLS.

A :class:`BrokerURL` carries everything needed to reach the broker: host and port, TLS files
(CA, client certificate and key), the user name and the password (given directly, or as a file
read again at every connection attempt so that a rotated Kubernetes Secret is picked up). Its
``str`` and ``repr`` never show the password; parse errors never echo it either.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from edgedev._errors import EdgedevError

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"

_SCHEMES = {"mqtt": False, "tcp": False, "mqtts": True, "ssl": True}
_HOST_LABEL = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
_BARE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(:[0-9]+)?$")
_USERINFO = re.compile(r"(?<=//)([^/@:]*):[^/@]*@")
_EXPECTED = "expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"


class BrokerConfigError(EdgedevError):
    """The broker settings can never work; the message says why in one line.

    For example a CA file that does not exist, a key that does not match its certificate, or
    TLS files with a plain ``mqtt://`` URL.
    """


def redact(url: str) -> str:
    """``url`` with the password of its user info replaced by ``***``."""
    return _USERINFO.sub(r"\1:***@", url)


def _check_host(host: str, shown: str) -> None:
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{shown}: {host!r} is not an IPv6 address") from None
        return
    if len(host) > 253 or not all(_HOST_LABEL.match(label) for label in host.split(".")):
        raise ValueError(f"{shown}: {host!r} is not a host name or address")


@dataclass(frozen=True, slots=True)
class BrokerURL:
    """A broker address and how to authenticate to it.

    Attributes:
        host: the broker's host name or address.
        port: its TCP port (1883 for ``mqtt://``, 8883 for ``mqtts://`` by default).
        tls: whether to speak TLS (``mqtts://``).
        username: the MQTT user name, if any.
        password: the password, if given directly (never shown by ``str`` or ``repr``).
        password_file: a file holding the password, read at every connection attempt
            (a trailing newline is ignored); it wins over ``password``.
        ca_file: PEM file of the CA(s) that signed the broker's certificate; the system's
            trust store when absent.
        cert_file: PEM client certificate, for brokers that require one (``key_file`` too).
        key_file: PEM private key of ``cert_file`` (``cert_file`` may hold both).
        tls_insecure: do not check that the broker's certificate names ``host``; the
            certificate chain is still verified. Never in production.
        max_packet_size: the largest packet the broker takes, in bytes, when it is smaller
            than the bus's default of 16 MiB (mosquitto's ``max_packet_size``; MQTT 3.1.1 brokers
            do not announce theirs); ``None``: the default.
    """

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False
    max_packet_size: int | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerURL:
        """Parse ``url``, strictly; a bare ``host[:port]`` means ``mqtt://``.

        Raises:
            ValueError: one line naming what is wrong (scheme, host, port, extra parts); the
                password, if any, is shown as ``***``.
        """
        shown = repr(redact(url))
        if "://" not in url:
            if not _BARE.match(url):
                raise ValueError(f"{shown} is not a broker URL: {_EXPECTED}")
            url = f"mqtt://{url}"
        try:
            parts = urlsplit(url)
            port_text = parts.port
        except ValueError as exc:
            bad_port = "port" in f"{exc}".lower()
            reason = "the port must be a number from 1 to 65535" if bad_port else exc
            raise ValueError(f"{shown}: {reason}") from None
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES:
            raise ValueError(f"{shown}: unknown scheme {parts.scheme!r}, {_EXPECTED}")
        tls = _SCHEMES[scheme]
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"{shown}: unexpected path, query or fragment; {_EXPECTED}")
        if not parts.hostname:
            raise ValueError(f"{shown}: no host; {_EXPECTED}")
        _check_host(parts.hostname, shown)
        if port_text == 0 or (port_text is None and parts.netloc.endswith(":")):
            raise ValueError(f"{shown}: the port must be a number from 1 to 65535")
        return cls(
            host=parts.hostname,
            port=port_text or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
        )

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{host}:{self.port}"

    def read_password(self) -> str | None:
        """The password: from :attr:`password_file` (read now), else :attr:`password`.

        Raises:
            OSError: the password file cannot be read.
        """
        if self.password_file is None:
            return self.password
        text = Path(self.password_file).read_text(encoding="utf-8")
        return text.rstrip("\r\n")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for ``mqtts://`` (``None`` for ``mqtt://``), with every file loaded.

        Raises:
            BrokerConfigError: a file is missing or unreadable, the key does not match the
                certificate, or TLS files were given for a plain ``mqtt://`` broker.
        """
        files = [f for f in (self.ca_file, self.cert_file, self.key_file) if f]
        if not self.tls:
            if files:
                raise BrokerConfigError(
                    f"TLS files given ({', '.join(files)}) but the broker {self} is not TLS: "
                    "use mqtts://"
                )
            return None
        if self.key_file and not self.cert_file:
            raise BrokerConfigError(f"--key-file {self.key_file} needs --cert-file")
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if self.ca_file:
            try:
                context.load_verify_locations(cafile=self.ca_file)
            except FileNotFoundError:
                raise BrokerConfigError(f"CA file {self.ca_file} does not exist") from None
            except (OSError, ssl.SSLError) as exc:
                raise BrokerConfigError(
                    f"CA file {self.ca_file} is not a usable PEM file: {_reason(exc)}"
                ) from None
        if self.cert_file:
            for path in (self.cert_file, self.key_file):
                if path and not Path(path).is_file():
                    raise BrokerConfigError(f"file {path} does not exist")
            try:
                context.load_cert_chain(self.cert_file, self.key_file)
            except (OSError, ssl.SSLError) as exc:
                raise BrokerConfigError(
                    f"client certificate {self.cert_file} with key {self.key_file or '(same file)'}"
                    f" cannot be used: {_reason(exc)}"
                ) from None
        if self.tls_insecure:
            context.check_hostname = False  # the chain is still verified
        return context

    def check(self) -> None:
        """Raise :class:`BrokerConfigError` if these settings can never work.

        Loads the TLS files and reads the password file once.
        """
        self.ssl_context()
        if self.password_file is not None:
            try:
                self.read_password()
            except (OSError, UnicodeDecodeError) as exc:
                raise BrokerConfigError(
                    f"cannot read the password file {self.password_file}: {_reason(exc)}"
                ) from None
        if (self.password is not None or self.password_file) and not self.username:
            raise BrokerConfigError("a password is given without a user name (--username)")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).replace("_", " ").lower()
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
