"""Where a push target points: checked when a file (or EdgeCore) gives it, shown redacted.

Pure. :func:`url_problems` and :func:`address_problems` say what is wrong with a target's URL
or ``host:port`` as ``(problems, warnings)``: a scheme the sink does not speak, no host, a
port that is not a number from 1 to 65535 are problems (the device is refused, naming the
field); a cloud metadata address (``169.254.169.254`` and its kind, which hand out the node's
credentials) is a problem too; another link-local address, and credentials written into the
URL (user info, or a query parameter such as ``token``), are warnings.

:func:`redact` is what every label, metric and log line shows of a target: user info and the
values of secret-looking query parameters replaced by ``***``.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ("address_problems", "redact", "url_problems")

Findings = tuple[list[str], list[str]]
"""``(problems, warnings)``, each a list of one-line messages."""

METADATA_HOSTS = frozenset(
    {
        "169.254.169.254",  # AWS, Azure, GCP, OpenStack, DigitalOcean ...
        "fd00:ec2::254",  # AWS over IPv6
        "169.254.170.2",  # AWS ECS task credentials
        "100.100.100.200",  # Alibaba Cloud
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
    }
)
"""Addresses that serve a cloud instance's credentials: never a push target."""

_SECRET_PARAM = re.compile(r"(pass|pwd|secret|token|key|auth|sig|credential)", re.IGNORECASE)


def url_problems(url: str, schemes: tuple[str, ...], *, default_scheme: str = "") -> Findings:
    """What is wrong with ``url`` as a target reached by ``schemes``.

    Args:
        url: the URL as written.
        schemes: the schemes the sink speaks (``("http", "https")``).
        default_scheme: the scheme assumed when ``url`` names none (``hostName: plc.local``);
            empty: a scheme is required.

    Examples:
        >>> url_problems("http://collector:4318/v1/metrics", ("http", "https"))
        ([], [])
        >>> url_problems("file:///etc/passwd", ("http", "https"))[0]
        ["'file' is not a scheme this target speaks (http, https)"]
        >>> url_problems("http://169.254.169.254/latest", ("http",))[0]
        ['169.254.169.254 is a cloud metadata address (it hands out credentials): refused']
    """
    text = url.strip()
    if "://" not in text and default_scheme:
        text = f"{default_scheme}://{text}"
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        return [f"not a URL ({exc})"], []
    if parts.scheme.lower() not in schemes:
        shown = parts.scheme or "no scheme"
        return [f"{shown!r} is not a scheme this target speaks ({', '.join(schemes)})"], []
    problems, warnings = _host_problems(parts.hostname or "")
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number in range
    except ValueError:
        port = parts.netloc.rpartition(":")[2]
        problems.append(f"port {port!r} is not a number from 1 to 65535")
    if parts.username is not None or parts.password is not None:
        warnings.append(
            "the URL carries a user name or password: give credentials through the "
            "environment instead (edgedev shows targets redacted, other tools may not)"
        )
    if any(_SECRET_PARAM.search(name) for name, _ in parse_qsl(parts.query)):
        warnings.append(
            "the URL's query carries what looks like a secret: give credentials through the "
            "environment instead"
        )
    return problems, warnings


def address_problems(addr: str) -> Findings:
    """What is wrong with ``addr`` as a ``host:port`` target (Redis, MySQL).

    Examples:
        >>> address_problems("127.0.0.1:6379")
        ([], [])
        >>> address_problems("127.0.0.1:abc")[0]
        ["port 'abc' is not a number from 1 to 65535"]
    """
    text = addr.strip()
    if "://" in text:
        return [f"{text!r}: give host:port, without a scheme"], []
    host, colon, port = text.rpartition(":")
    if not colon:
        host, port = text, ""
    host = host.strip("[]")
    problems, warnings = _host_problems(host)
    if colon and not (port.isdigit() and 1 <= int(port) <= 65535):
        problems.append(f"port {port!r} is not a number from 1 to 65535")
    if "@" in host:
        warnings.append("the address carries a user name: give credentials through the environment")
    return problems, warnings


def _host_problems(host: str) -> Findings:
    if not host:
        return ["no host"], []
    if any(c.isspace() or c in "/?#" for c in host):
        return [f"{host!r} is not a host name"], []
    if host.lower().rstrip(".") in METADATA_HOSTS:
        return [f"{host} is a cloud metadata address (it hands out credentials): refused"], []
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return [], []
    if ip.is_link_local:
        return [], [f"{host} is a link-local address: is this target really on this link?"]
    return [], []


def redact(target: str) -> str:
    """``target`` with user info and secret-looking query values replaced by ``***``.

    Examples:
        >>> redact("mqtt://user:s3cret@broker:1883")
        'mqtt://***@broker:1883'
        >>> redact("http://collector/v1?token=abc&org=plant")
        'http://collector/v1?token=***&org=plant'
        >>> redact("127.0.0.1:6379")
        '127.0.0.1:6379'
    """
    if "://" not in target:
        _, at, rest = target.rpartition("@")
        return f"***@{rest}" if at else target
    try:
        parts = urlsplit(target)
    except ValueError:
        return "***"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        redacted = [(k, "***" if _SECRET_PARAM.search(k) else v) for k, v in pairs]
        query = urlencode(redacted, safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
