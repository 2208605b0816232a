"""Safe by default: the Host check against DNS rebinding, and the upload limits.

DNS rebinding: a web page on ``evil.example`` can make its own name resolve to 127.0.0.1 and
then read the local server as if it were same-origin. Its requests still carry
``Host: evil.example``, so the server answers only requests whose Host is the address it serves:
for a loopback bind, ``127.0.0.1``, ``localhost`` or ``[::1]``; for an address such as
192.168.1.5, that address and the loopback names; for ``0.0.0.0`` / ``::`` (every interface),
any IP literal and ``localhost`` (a rebinding attack needs a DNS name). Refused: 400.

Uploads: the request body is refused with 413 as soon as it is larger than the limit, from its
Content-Length or while it streams in (before anything is parsed); an image file over the limit
is 413 too, and its pixel count is read from the header and checked before it is decoded.
"""

from __future__ import annotations

import io
import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["ApiError", "BodyLimit", "HostCheck", "check_image", "host_allowed", "json_error"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
EVERY_INTERFACE = frozenset({"0.0.0.0", "::", ""})
MULTIPART_OVERHEAD = 64 * 1024  # the form's boundaries and headers, beside the file itself


class ApiError(Exception):
    """An error for the client: HTTP ``status`` and a one-line ``message`` (sent as JSON)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _hostname(header: str) -> str:
    """``example.com:8000`` -> ``example.com``; ``[::1]:8000`` -> ``::1``; lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_allowed(header: str, served: str) -> bool:
    """Whether a request with ``Host: header`` may reach a server bound to ``served``."""
    name = _hostname(header)
    if name in LOOPBACK_NAMES:
        return True
    if served in EVERY_INTERFACE:
        return _is_ip(name)
    return name == _hostname(served)


def json_error(status: int, message: str) -> tuple[dict[str, Any], bytes]:
    """The ASGI start message and body of ``{"error": message}`` with ``status``."""
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return {"type": "http.response.start", "status": status, "headers": headers}, body


async def _send_error(send: Send, status: int, message: str) -> None:
    start, body = json_error(status, message)
    await send(start)
    await send({"type": "http.response.body", "body": body})


class HostCheck:
    """ASGI middleware: 400 ``{"error"}`` for a Host header the server does not serve."""

    def __init__(self, app: ASGIApp, served: str) -> None:
        self.app, self.served = app, served

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = dict(scope.get("headers") or [])
            host = headers.get(b"host", b"").decode("latin-1")
            if not host_allowed(host, self.served):
                await _send_error(send, 400, f"refused: Host {host!r} is not this server")
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """ASGI middleware: 413 ``{"error"}`` for a request body over ``max_bytes`` (plus the
    multipart overhead), from Content-Length or while the body streams in: past the limit the
    application is told the client left, and whatever it answers is replaced by the 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.limit = app, max_bytes + MULTIPART_OVERHEAD
        self.message = f"the upload is larger than the server's limit of {_mb(max_bytes)}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length", b"0")
        if length.isdigit() and int(length) > self.limit:
            await _send_error(send, 413, self.message)
            return
        seen, over = 0, False

        async def counted() -> Message:
            nonlocal seen, over
            message = await receive()
            seen += len(message.get("body", b""))
            over = over or seen > self.limit
            return {"type": "http.disconnect"} if over else message

        async def unless_over(message: Message) -> None:
            if not over:
                await send(message)

        try:
            await self.app(scope, counted, unless_over)
        except Exception:
            if not over:
                raise
        if over:
            await _send_error(send, 413, self.message)


def _mb(size: int) -> str:
    return f"{size / 2**20:.3g} MB"


def check_image(data: bytes, name: str, max_bytes: int, max_pixels: int) -> None:
    """ApiError 413 for an upload over ``max_bytes`` or over ``max_pixels`` (read from the
    header, nothing decoded); 400 for an empty file. Undecodable data is left to the reader."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > max_bytes:
        raise ApiError(413, f"{name}: {len(data):,} bytes, over the limit of {_mb(max_bytes)}")
    if not data:
        raise ApiError(400, f"{name}: empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return  # the reader refuses it with the CLI's own reason
    if width * height > max_pixels:
        raise ApiError(
            413,
            f"{name}: {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,}; shrink it first",
        )
