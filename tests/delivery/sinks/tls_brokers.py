"""Throwaway brokers on loopback that require a client certificate of their own CA (mutual
TLS): Mosquitto and nats-server (with JetStream), each a subprocess in a directory of its
own holding its PEMs, config and log."""

from __future__ import annotations

import contextlib
import getpass
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.delivery.sinks.pki import Authority
from tests.support.server import free_port
from tests.support.waiting import wait_until


@dataclass(frozen=True)
class TlsBroker:
    port: int
    ca: Authority
    directory: Path

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    def log(self) -> str:
        return (self.directory / "broker.log").read_text()

    def client_files(self, name: str) -> tuple[Path, Path]:
        """A new client certificate of the broker's CA, and its key, as files."""
        return self.ca.issue(name).write(self.directory, name)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def _run(directory: Path, port: int, command: list[str]) -> Iterator[None]:
    log_path = directory / "broker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log)
        try:
            wait_until(lambda: _listening(port), 10, log_path.read_text)
            yield
        finally:
            process.terminate()
            process.wait(10)


def _pki(directory: Path) -> tuple[Authority, Path, Path]:
    ca = Authority("Herald test CA")
    (directory / "ca.pem").write_text(ca.pem)
    cert, key = ca.issue("broker", server=True).write(directory, "broker")
    return ca, cert, key


@contextlib.contextmanager
def mosquitto(directory: Path) -> Iterator[TlsBroker]:
    """Mosquitto taking TLS connections with a certificate of its CA only."""
    ca, cert, key = _pki(directory)
    port = free_port()
    config = directory / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\n"
        f"cafile {directory / 'ca.pem'}\ncertfile {cert}\nkeyfile {key}\n"
        "require_certificate true\nallow_anonymous true\npersistence false\n"
        f"user {getpass.getuser()}\n"  # as root it would drop to a user who cannot read these
    )
    with _run(directory, port, ["mosquitto", "-c", str(config)]):
        yield TlsBroker(port, ca, directory)


@contextlib.contextmanager
def nats_server(directory: Path) -> Iterator[TlsBroker]:
    """nats-server with JetStream, taking TLS connections with a certificate of its CA only."""
    ca, cert, key = _pki(directory)
    port = free_port()
    config = directory / "nats.conf"
    config.write_text(
        f'listen: "127.0.0.1:{port}"\n'
        f'jetstream {{ store_dir: "{directory / "js"}" }}\n'
        f'tls {{ cert_file: "{cert}", key_file: "{key}", '
        f'ca_file: "{directory / "ca.pem"}", verify: true }}\n'
    )
    with _run(directory, port, ["nats-server", "-c", str(config)]):
        yield TlsBroker(port, ca, directory)
