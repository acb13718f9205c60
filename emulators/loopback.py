"""The emulators' server side of HTTP, framework-free: request and response types, and
`LoopbackServer`.

An emulator is any object with `handle(EmulatorRequest) -> EmulatorResponse`. The same
object is served two ways: by `LoopbackServer` (stdlib `http.server`, used by tests, real
sockets so clients see real timeouts and dropped connections) and by the Django adapter
in `views.py` (the local demo under /emulators/<kind>/).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
HTML_CONTENT_TYPE = "text/html; charset=utf-8"


class Headers(Mapping[str, str]):
    """Read-only, case-insensitive header mapping (HTTP header names are case-insensitive).

    Repeated headers are joined with ", " as RFC 9110 allows for list-valued fields.
    """

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in pairs:
            key = name.lower()
            if key in self._items:
                original, previous = self._items[key]
                self._items[key] = (original, f"{previous}, {value}")
            else:
                self._items[key] = (name, str(value))

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (original for original, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


@dataclass
class EmulatorRequest:
    """One HTTP request as an emulator sees it; `path` excludes any mount prefix."""

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=Headers)
    body: bytes = b""

    def __post_init__(self) -> None:
        self.method = self.method.upper()
        if not self.path.startswith("/"):
            self.path = "/" + self.path
        if not isinstance(self.headers, Headers):
            self.headers = Headers(self.headers)

    def json(self) -> Any | None:
        """The body parsed as JSON, or None when it is empty or not valid JSON."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None

    def form(self) -> dict[str, str]:
        """The body parsed as application/x-www-form-urlencoded (last value wins)."""
        text = self.body.decode("utf-8", errors="replace")
        return dict(parse_qsl(text, keep_blank_values=True))


@dataclass
class EmulatorResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any | None:
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None


class DropConnection(Exception):
    """Raised by an emulator to close the connection without sending a single byte.

    Used by faults to imitate a proxy or a crashed server; only the LoopbackServer can do
    it for real (see views.py for the Django stand-in).
    """


class Emulator(Protocol):
    def handle(self, request: EmulatorRequest) -> EmulatorResponse: ...


def json_response(
    status: int, data: Any, headers: Mapping[str, str] | None = None
) -> EmulatorResponse:
    # Compact, as .NET serializers write it (seed 000 quotes {"error":"invalid_client"}).
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return EmulatorResponse(
        status=status, body=body, headers={"Content-Type": JSON_CONTENT_TYPE, **(headers or {})}
    )


def html_response(status: int, html: str) -> EmulatorResponse:
    return EmulatorResponse(
        status=status, body=html.encode("utf-8"), headers={"Content-Type": HTML_CONTENT_TYPE}
    )


# --- Loopback server ------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a request sleeping in a timeout fault must not block shutdown

    def __init__(self, app: Emulator) -> None:
        self.app = app
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: clients hanging up on purpose (timeouts, drops) is normal here."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real providers do
    server: _Server
    # Each response goes out at once: with Nagle's algorithm on, a kept-alive connection's next
    # request stalled ~40 ms waiting for the client's delayed ACK (issue 12).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: no access log on stderr."""

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except ValueError:
            self._write(EmulatorResponse(400, b"Bad request body", {"Content-Type": "text/plain"}))
            return
        parts = urlsplit(self.path)
        request = EmulatorRequest(
            method=self.command,
            path=parts.path or "/",
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers=Headers(self.headers.items()),
            body=body,
        )
        try:
            response = self.server.app.handle(request)
        except DropConnection:
            self._drop()
            return
        except Exception as error:  # an emulator bug: say so rather than hang the client
            response = EmulatorResponse(
                500, f"Emulator error: {error!r}".encode(), {"Content-Type": "text/plain"}
            )
        self._write(response)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()  # CRLF after each chunk

    def _write(self, response: EmulatorResponse) -> None:
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                if name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
        except OSError:
            # The client gave up (e.g. its read timeout fired during a timeout fault).
            self.close_connection = True

    def _drop(self) -> None:
        """Close the socket now: nothing has been written, and nothing will be."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class LoopbackServer:
    """Serves one emulator on 127.0.0.1 with an OS-chosen port, in a daemon thread."""

    def __init__(self, app: Emulator) -> None:
        self.app = app
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("LoopbackServer is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LoopbackServer:
        if self._server is None:
            self._server = _Server(self.app)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"emulator-{type(self.app).__name__}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
