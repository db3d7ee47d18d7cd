"""Opening and closing an asyncua client, and asyncua's errors mapped to edgedev's.

The only module besides the driver and the simulator that imports asyncua; it is imported
when a device connects, never when files are validated.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
from asyncua import ua
from asyncua.client.client import Client
from asyncua.client.ua_client import UaClientState
from asyncua.crypto import security_policies, uacrypto
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from edgedev.drivers import DeviceError
from edgedev_opcua.certs import application_uri_of
from edgedev_opcua.config import OpcuaProtocol

log = logging.getLogger("edgedev.opcua")

CLIENT_URI = "urn:edgedev:opcua:mapper"
SESSION_TIMEOUT_MS = 60_000
CLOSE_GRACE = 1.0
"""Seconds a polite close (CloseSession, CloseSecureChannel) may take before the socket drops."""

_LOGIN = frozenset(
    {
        "BadUserAccessDenied",
        "BadIdentityTokenInvalid",
        "BadIdentityTokenRejected",
        "BadUserSignatureInvalid",
    }
)
_SECURITY = frozenset(
    {
        "BadSecurityChecksFailed",
        "BadSecurityPolicyRejected",
        "BadCertificateInvalid",
        "BadCertificateUntrusted",
        "BadCertificateUriInvalid",
        "BadCertificateTimeInvalid",
        "BadCertificateUseNotAllowed",
        "BadNonceInvalid",
        "BadSecurityModeRejected",
    }
)


_EARLY = "Received data for unknown subscription"
_LEFT = "Received a notification for unknown handle"


def _quiet_lost_connection(record: logging.LogRecord) -> bool:
    """Demote asyncua's reports of a connection that is already gone to DEBUG.

    When a server goes away, asyncua's publish loop logs the ``ConnectionError`` at ERROR
    with a traceback, and closing logs or warns that the connection is closed; the driver reports
    the same loss once, as the device going offline. A keep-alive of a subscription that
    arrives before asyncua has registered it (no monitored items yet) is harmless too, and so is
    a value of a monitored item that a leaving device removed while the value was on its way.
    """
    lost = record.exc_info is not None and isinstance(record.exc_info[1], ConnectionError)
    message = record.getMessage()
    if lost or message.endswith("but connection is closed") or message.startswith((_EARLY, _LEFT)):
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        record.exc_info = None
        record.exc_text = None
        # the logger's level was checked before this filter: check it again for DEBUG
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
    return True


for _name in (
    "asyncua.common.subscription",
    "asyncua.client.client",
    "asyncua.client.ua_session.UaSession",
    "asyncua.client.ua_client.UaClient",
):
    logging.getLogger(_name).addFilter(_quiet_lost_connection)


def status_name(code: int) -> str:
    """The name of an OPC-UA status code (``BadNodeIdUnknown``)."""
    from asyncua.ua.status_codes import get_name_and_doc

    return get_name_and_doc(code)[0]


def describe(exc: BaseException, cfg: OpcuaProtocol) -> str:
    """A message for ``exc`` that says what the user may fix."""
    if isinstance(exc, UaStatusCodeError):
        name = status_name(exc.code)
        if name in _LOGIN:
            who = f"user {cfg.user_name!r}" if cfg.user_name else "anonymous login"
            return f"{cfg.url}: the server refused {who} ({name}); check userName and password"
        if name in _SECURITY:
            return (
                f"{cfg.url}: the server refused the secure channel ({name}); check "
                f"securityPolicy, securityMode and the certificates"
            )
        return f"{cfg.url}: {name}"
    if isinstance(exc, TimeoutError):
        return f"{cfg.url}: no answer within {cfg.timeout} ms"
    if isinstance(exc, UaError) and "No matching endpoints" in str(exc):
        return (
            f"{cfg.url}: the server offers no endpoint with securityPolicy "
            f"{cfg.security_policy} and securityMode {cfg.security_mode}"
        )
    return f"{cfg.url}: {exc or type(exc).__name__}"


@contextmanager
def device_errors(cfg: OpcuaProtocol) -> Iterator[None]:
    """Map asyncua's exceptions (and socket errors) to :class:`DeviceError` at the boundary."""
    try:
        yield
    except DeviceError:
        raise
    except (UaError, OSError, TimeoutError, ValueError) as exc:
        raise DeviceError(describe(exc, cfg)) from exc


def _read_credential(path: Path, what: str) -> uacrypto.CertProperties:
    try:
        data = path.expanduser().read_bytes()
    except OSError as exc:
        raise DeviceError(f"{what} {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    extension = "pem" if data.lstrip().startswith(b"-----") else "der"
    return uacrypto.CertProperties(data, extension)


def password_of(cfg: OpcuaProtocol) -> str:
    """The password of ``cfg``: given, or read from ``passwordFile`` (its first line).

    Raises:
        DeviceError: the password file cannot be read.
    """
    if cfg.password_file is None:
        return cfg.password.get_secret_value() if cfg.password else ""
    path = cfg.password_file.expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DeviceError(f"passwordFile {str(path)!r} cannot be read: {why}") from None
    return text.splitlines()[0] if text else ""


async def open_client(cfg: OpcuaProtocol, *, watchdog: float) -> Client:
    """Connect a session to the server of ``cfg``; the caller closes it with :func:`close_client`.

    Args:
        cfg: the device's protocol settings.
        watchdog: seconds between asyncua's liveness probes of an idle connection.

    Raises:
        DeviceError: the server cannot be reached, refuses the login or the secure channel.
    """
    timeout = cfg.timeout / 1000
    client = Client(cfg.url, timeout=timeout, watchdog_intervall=watchdog)
    client.name = client.description = "edgedev OPC-UA mapper"
    client.application_uri = CLIENT_URI
    client.session_timeout = SESSION_TIMEOUT_MS
    if cfg.user_name is not None:
        client.set_user(cfg.user_name)
        client.set_password(password_of(cfg))
    try:
        with device_errors(cfg):
            if cfg.secured:
                assert cfg.certificate is not None and cfg.private_key is not None
                cert = _read_credential(cfg.certificate, "certificate")
                key = _read_credential(cfg.private_key, "privateKey")
                server = None
                if cfg.server_certificate is not None:
                    server = _read_credential(cfg.server_certificate, "serverCertificate")
                assert isinstance(cert.path_or_content, bytes)
                client.application_uri = application_uri_of(cert.path_or_content) or CLIENT_URI
                await client.set_security(
                    getattr(security_policies, f"SecurityPolicy{cfg.security_policy}"),
                    cert,
                    key,
                    server_certificate=server,
                    mode=getattr(ua.MessageSecurityMode, cfg.security_mode),
                )
            await client.connect()
    except BaseException:
        await close_client(client)
        raise
    return client


async def close_client(client: Client) -> None:
    """Close the session politely if the server still answers, then drop the socket.

    Never raises and takes at most :data:`CLOSE_GRACE` seconds, so that a mapper reconnects
    promptly after the server went away.
    """
    with anyio.CancelScope(shield=True):
        try:
            with anyio.move_on_after(CLOSE_GRACE):
                if client.uaclient.state is UaClientState.CONNECTED:
                    await client.disconnect()
                else:
                    await client.close_session()  # cancels asyncua's own tasks
        except Exception:  # a failing goodbye must not hide the reason we are closing
            log.debug(
                "closing the OPC-UA session to %s failed", client.server_url.geturl(), exc_info=True
            )
        finally:
            client.uaclient.request_disconnect()
            client.disconnect_socket()
