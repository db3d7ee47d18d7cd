"""A private CA, server and client certificates, and mosquitto configured to require them.

The mosquitto settings here are the ones docs/reliability.md ("Securing the bus") shows.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgedev.testing import Mosquitto

USER = "edge-node-1"


@dataclass(frozen=True)
class Pki:
    """PEM files: the CA, a server certificate for localhost, a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_key: Path  # a key that matches no certificate


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_pki(directory: Path, server_name: str = "localhost") -> Pki:
    """A CA, and a server and a client certificate it signed, valid for a day.

    The server certificate names ``server_name`` (and 127.0.0.1 when it is ``localhost``).
    """
    now = datetime.datetime.now(datetime.UTC)
    ca_key = _key()
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("edgedev test CA"))
        .issuer_name(_name("edgedev test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    def issue(common: str, usage: x509.ObjectIdentifier, san: list[x509.GeneralName]) -> tuple:
        key = _key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return key, builder.sign(ca_key, hashes.SHA256())

    names: list[x509.GeneralName] = [x509.DNSName(server_name)]
    if server_name == "localhost":
        names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    server_key, server_cert = issue(server_name, ExtendedKeyUsageOID.SERVER_AUTH, names)
    client_key, client_cert = issue(USER, ExtendedKeyUsageOID.CLIENT_AUTH, [])
    pem = serialization.Encoding.PEM
    directory.mkdir(parents=True, exist_ok=True)
    ca = directory / "ca.pem"
    ca.write_bytes(ca_cert.public_bytes(pem))
    server = directory / "server.pem"
    server.write_bytes(server_cert.public_bytes(pem))
    client = directory / "client.pem"
    client.write_bytes(client_cert.public_bytes(pem))
    return Pki(
        ca=ca,
        server_cert=server,
        server_key=_write_key(server_key, directory / "server.key"),
        client_cert=client,
        client_key=_write_key(client_key, directory / "client.key"),
        stranger_key=_write_key(_key(), directory / "stranger.key"),
    )


def password_file(path: Path, user: str, password: str) -> Path:
    """A mosquitto password file made by ``mosquitto_passwd`` (hashed, as in production)."""
    binary = shutil.which("mosquitto_passwd")
    if binary is None:
        pytest.skip("mosquitto_passwd is not installed")
    path.unlink(missing_ok=True)
    subprocess.run([binary, "-b", "-c", str(path), user, password], check=True)
    return path


def secure_mosquitto(pki: Pki | None, passwords: Path | None) -> Mosquitto:
    """mosquitto requiring TLS with a client certificate (``pki``) and/or a password."""
    if not Mosquitto.available():
        pytest.skip("mosquitto is not installed")
    lines = []
    if passwords is not None:
        lines += ["allow_anonymous false", f"password_file {passwords}"]
    else:
        lines += ["allow_anonymous true"]
    if pki is not None:
        lines += [
            f"cafile {pki.ca}",
            f"certfile {pki.server_cert}",
            f"keyfile {pki.server_key}",
            "require_certificate true",
        ]
    return Mosquitto(settings="\n".join(lines), tls=pki is not None)
