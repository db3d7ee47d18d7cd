"""Self-signed OPC-UA application certificates, for the simulator, tests and first trials.

OPC-UA wants the application URI in the certificate's subjectAltName (next to the host
names), and key usages that allow both signing and encryption. Production sites issue
certificates from their own CA; this module only makes the self-signed kind.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True, slots=True)
class Credentials:
    """A certificate and its private key, both PEM.

    Attributes:
        certificate: the X.509 certificate (PEM).
        private_key: the unencrypted PKCS#8 RSA key (PEM).
        application_uri: the URI the certificate names.
    """

    certificate: bytes
    private_key: bytes
    application_uri: str

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """Write ``<stem>-cert.pem`` and ``<stem>-key.pem`` into ``directory``; their paths."""
        cert = directory / f"{stem}-cert.pem"
        key = directory / f"{stem}-key.pem"
        cert.write_bytes(self.certificate)
        key.write_bytes(self.private_key)
        key.chmod(0o600)
        return cert, key


def self_signed(
    application_uri: str,
    *,
    common_name: str = "edgedev",
    hosts: Sequence[str] = ("localhost", "127.0.0.1"),
    days: int = 365,
    key_size: int = 2048,
) -> Credentials:
    """A new RSA key and a self-signed certificate for an OPC-UA application.

    Args:
        application_uri: the application's URI (``urn:host:edgedev``), put in subjectAltName.
        common_name: the subject's common name.
        hosts: DNS names and IP addresses put in subjectAltName (this host's name is added).
        days: validity from now.
        key_size: RSA key bits (2048 suits Basic256Sha256 and the Aes policies).
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    alt: list[x509.GeneralName] = [x509.UniformResourceIdentifier(application_uri)]
    for host in dict.fromkeys([*hosts, socket.gethostname()]):
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=True,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Credentials(
        certificate=cert.public_bytes(serialization.Encoding.PEM),
        private_key=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        application_uri=application_uri,
    )


def application_uri_of(certificate: bytes) -> str | None:
    """The first URI in the subjectAltName of a PEM or DER certificate, if any."""
    try:
        if certificate.lstrip().startswith(b"-----"):
            cert = x509.load_pem_x509_certificate(certificate)
        else:
            cert = x509.load_der_x509_certificate(certificate)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (ValueError, x509.ExtensionNotFound):
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None
