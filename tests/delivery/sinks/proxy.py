"""A TCP proxy on loopback in front of a broker: cutting it breaks every connection through
it (a broker restart as the sink sees it) without touching the machine's broker."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Proxy:
    upstream_port: int
    port: int = 0
    down: bool = False  # refusing: each connection is closed as soon as it is accepted
    connections: int = 0  # accepted and forwarded, in all
    _sockets: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url_host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cut(self, *, stay_down: bool = False) -> None:
        """Break every connection through the proxy; ``stay_down``: refuse new ones too."""
        self.down = stay_down
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def up(self) -> None:
        self.down = False

    def _serve(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), 5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
                self.connections += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def proxy(upstream_port: int) -> Iterator[Proxy]:
    """A proxy to ``127.0.0.1:upstream_port`` for the block's length."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    running = Proxy(upstream_port, listener.getsockname()[1])
    thread = threading.Thread(target=running._serve, args=(listener,), daemon=True)
    thread.start()
    try:
        yield running
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accept
        listener.close()
        running.cut()
        thread.join(5)
