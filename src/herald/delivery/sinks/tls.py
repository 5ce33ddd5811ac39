"""TLS of the broker sinks: the PEMs a handler may give (a CA bundle to verify the broker,
a client certificate and key to be verified by it), checked when the handler is written,
and the context a connection uses.

The reasons given for a refused PEM never quote it: a key is a secret.
"""

from __future__ import annotations

import os
import socket
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

MAX_PEM_CHARS = 16384  # a key and a chain of a few certificates


class PemError(ValueError):
    """A PEM that cannot be used, and why (never quoting it)."""


def check_certificates(pem: str) -> list[x509.Certificate]:
    """The certificates of a PEM bundle, in order; PemError if it holds none or a bad one."""
    try:
        found = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise PemError("not PEM certificates (-----BEGIN CERTIFICATE-----)") from None
    return found


def check_key(key: str, cert: str) -> None:
    """PemError unless ``key`` is an unencrypted private key, that of the first certificate
    of ``cert`` (a bundle ``check_certificates`` took)."""
    leaf = check_certificates(cert)[0]
    try:
        private = load_pem_private_key(key.encode(), password=None)
    except TypeError:
        raise PemError("an encrypted key: give it unencrypted (it is sealed at rest)") from None
    except Exception:  # malformed or of an unsupported algorithm
        raise PemError("not a PEM private key (PKCS#8, PKCS#1 or SEC1)") from None
    if _public(leaf.public_key()) != _public(private.public_key()):
        raise PemError("not the key of the client certificate")


def _public(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


class NamedContext(ssl.SSLContext):
    """A client context that speaks to one server name whatever the connection was opened
    to: the sink connects to the address it checked (never resolving the name again, which
    would open a DNS rebinding window), the client libraries pass that address as the
    server's name, and this context sends the real name (SNI) and verifies the certificate
    for it, in the libraries that wrap sockets (paho) and those that wrap BIOs (asyncio)."""

    server_name: str

    def wrap_socket(
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        return super().wrap_socket(
            sock,
            server_side,
            do_handshake_on_connect,
            suppress_ragged_eofs,
            self.server_name,
            session,
        )

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        return super().wrap_bio(incoming, outgoing, server_side, self.server_name, session)


def client_context(
    verify: bool,
    ca_cert: str | None,
    client_cert: str | None,
    client_key: str | None,
    server_name: str | None = None,
) -> ssl.SSLContext:
    """A client context: the broker verified (against ``ca_cert`` alone if given, else the
    system's CAs) unless ``verify`` is off; the client certificate presented if given.
    With ``server_name``, a ``NamedContext`` of that name."""
    if server_name is None:
        tls = (
            ssl.create_default_context(cadata=ca_cert) if ca_cert else ssl.create_default_context()
        )
    else:  # as ssl.create_default_context builds one
        tls = NamedContext(ssl.PROTOCOL_TLS_CLIENT)
        tls.server_name = server_name
        if ca_cert:
            tls.load_verify_locations(cadata=ca_cert)
        else:
            tls.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if not verify:
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    if client_cert and client_key:
        _load_chain(tls, (client_cert.strip() + "\n" + client_key.strip() + "\n").encode())
    return tls


def _load_chain(tls: ssl.SSLContext, pem: bytes) -> None:
    """Load a certificate chain with its key: ``ssl`` reads them from a file only, so they
    go through an anonymous file in memory (Linux), else a temporary file of mode 0600 in a
    private directory, deleted as soon as it is read."""
    if hasattr(os, "memfd_create"):
        descriptor = os.memfd_create("herald-client-cert", os.MFD_CLOEXEC)
        try:
            with open(descriptor, "wb", closefd=False) as file:
                file.write(pem)
            tls.load_cert_chain(f"/proc/self/fd/{descriptor}")
        finally:
            os.close(descriptor)
        return
    with tempfile.TemporaryDirectory(prefix="herald-") as directory:  # mode 0700
        path = Path(directory, "client.pem")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with open(descriptor, "wb") as file:
                file.write(pem)
            tls.load_cert_chain(path)
        finally:
            path.unlink()
