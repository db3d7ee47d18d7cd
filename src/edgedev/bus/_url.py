"""Broker addresses: ``mqtt://[user:password@]host[:port]`` or ``mqtts://`` for TLS."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"


@dataclass(frozen=True, slots=True)
class BrokerURL:
    """A parsed broker address."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerURL:
        """Parse ``url``; a bare ``host[:port]`` means ``mqtt://``.

        Raises:
            ValueError: the scheme is not mqtt/mqtts/tcp/ssl or the port is invalid.
        """
        if "://" not in url:
            url = f"mqtt://{url}"
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in {"mqtt", "mqtts", "tcp", "ssl"}:
            raise ValueError(f"{url!r}: scheme must be mqtt:// or mqtts://")
        tls = scheme in {"mqtts", "ssl"}
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError as exc:
            raise ValueError(f"{url!r}: {exc}") from None
        if not parts.hostname:
            raise ValueError(f"{url!r}: no host")
        return cls(
            host=parts.hostname,
            port=port,
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"
