"""A throwaway PKI for the TLS tests: a CA issuing a broker certificate for 127.0.0.1 and
client certificates, all PEM, made with ``cryptography`` (P-256 keys: quick to make)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, PEM (the key PKCS#8, unencrypted)."""

    cert: str
    key: str

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        """The certificate and the key in files of ``directory`` (the key mode 0600)."""
        cert, key = directory / f"{name}.pem", directory / f"{name}.key"
        cert.write_text(self.cert)
        key.touch(mode=0o600)
        key.write_text(self.key)
        return cert, key


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class Authority:
    """A CA of its own; ``issue`` signs a broker's or a client's certificate."""

    def __init__(self, common_name: str) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = _name(common_name)
        now = datetime.now(UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            # an hour before the certificates it issues: made in the same second, a client's
            # certificate would share a line of PEM (issuer and dates) with the CA's, which
            # a handler shows (ca_cert), and the tests that no line of it shows would fail
            .not_valid_before(now - timedelta(hours=2))
            .not_valid_after(now + timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
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
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )

    @property
    def pem(self) -> str:
        return self._cert.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, common_name: str, *, server: bool = False, dns_name: str = "") -> Issued:
        """A certificate for a broker on 127.0.0.1 (``server``), or of the name ``dns_name``
        alone, or for a client."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        server = server or bool(dns_name)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
        )
        if dns_name:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False
            )
        elif server:
            names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        return Issued(cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key))
