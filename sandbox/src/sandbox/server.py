"""Serve fake processors with uvicorn: in a background thread (tests) or several on one loop (CLI)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
import time
from collections.abc import Generator, Sequence
from types import TracebackType
from typing import Self

import uvicorn
from starlette.types import ASGIApp

STARTUP_TIMEOUT_S = 10.0
GRACEFUL_SHUTDOWN_S = 1


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its owner."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket; port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets that say so,
    # and without it every small keep-alive response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _config(app: ASGIApp, log_level: str, access_log: bool) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level=log_level,
        access_log=access_log,
        lifespan="off",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        timeout_keep_alive=30,
    )


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class BackgroundServer:
    """An ASGI app served on a free port from a daemon thread: `with BackgroundServer(app) as s: s.url`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        access_log: bool = False,
    ) -> None:
        self.app = app
        self._sock = bind_socket(host, port)
        self.url = url_of(self._sock)
        self._server = _Server(_config(app, log_level, access_log))
        self._thread = threading.Thread(target=self._run, name=f"sandbox-server {self.url}", daemon=True)
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:  # surfaced by start()
            self._error = exc

    def start(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"sandbox server failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"sandbox server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=GRACEFUL_SHUTDOWN_S + 5)
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_in_thread(app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> BackgroundServer:
    """Start `app` on a free port in a background thread; `.url` is its base URL, `.stop()` ends it."""
    return BackgroundServer(app, host=host, port=port).start()


async def serve_together(
    apps: Sequence[tuple[ASGIApp, socket.socket]],
    *,
    log_level: str = "info",
    access_log: bool = True,
) -> None:
    """Serve several apps from one event loop until SIGINT/SIGTERM."""
    servers = [_Server(_config(app, log_level, access_log)) for app, _ in apps]
    loop = asyncio.get_running_loop()

    def stop_all() -> None:
        for server in servers:
            if server.should_exit:
                server.force_exit = True
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop_all)
    await asyncio.gather(
        *(server.serve(sockets=[sock]) for server, (_, sock) in zip(servers, apps, strict=True))
    )
