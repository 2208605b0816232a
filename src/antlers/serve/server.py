"""Running the application: uvicorn on a socket bound first.

Binding the socket ourselves makes a busy port an OSError that ``antlers serve`` reports in one
line, and port 0 a free port whose number is known before the first request. ``serve`` blocks
until Ctrl-C (uvicorn finishes the requests in flight, then returns); ``running`` serves from a
background thread for as long as its ``with`` block lasts (tests, benchmarks).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["bind", "running", "serve", "url_of"]


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one); OSError if taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # no Nagle: a response's headers and body are two writes; without this the body waits
    # for the client's delayed ACK (accepted sockets inherit the option on Linux)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://HOST:PORT/`` for the bound socket (every-interface binds: 127.0.0.1)."""
    host, port = sock.getsockname()[:2]
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _server(app: Any, sock: socket.socket) -> Any:
    import uvicorn

    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    return uvicorn.Server(config)


def serve(app: Any, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until Ctrl-C (or SIGTERM); then the socket is closed."""
    try:
        _server(app, sock).run(sockets=[sock])
    finally:
        sock.close()


@contextlib.contextmanager
def running(app: Any, host: str = "127.0.0.1", timeout: float = 30.0) -> Iterator[str]:
    """``app`` served on a free port of ``host`` from a background thread; yields its URL and
    stops the server (requests in flight finished) when the block ends."""
    sock = bind(host, 0)
    server = _server(app, sock)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        if not server.started:
            raise RuntimeError("the server did not start")
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
