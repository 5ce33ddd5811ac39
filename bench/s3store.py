"""An S3-compatible store for the sinks benchmark: moto's ``ThreadedMotoServer`` in a
process of its own (``python -m bench.s3store PORT``), so that it does not share a GIL with
the raw client loop measured beside Herald. moto is a Python server: its CPU time is
reported beside the rates, to show when it, not the client, bounds them.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer
from tests.support.server import free_port

REGION = "us-east-1"
ACCESS_KEY = "bench"
SECRET_KEY = "bench-secret"


@dataclass(frozen=True)
class Store:
    """A running store: its endpoint URL, a bucket made for the run, and its process."""

    url: str
    bucket: str
    pid: int

    def cpu_seconds(self) -> float:
        """User and system CPU time the store's process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def s3_store(bucket: str) -> Iterator[Store]:
    """The store process on a free loopback port, with ``bucket`` created in it."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.s3store", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != b"ready":
            raise RuntimeError("the S3 store did not start")
        url = f"http://127.0.0.1:{port}"
        client = boto3.client(
            "s3",
            endpoint_url=url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )
        client.create_bucket(Bucket=bucket)
        client.close()
        yield Store(url, bucket, process.pid)
    finally:
        process.terminate()
        process.wait(10)


def main(port: int) -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log line per PUT
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    threading.Event().wait()  # until terminated


if __name__ == "__main__":
    main(int(sys.argv[1]))
