"""Small network helpers: free local ports and waiting for a port or an HTTP answer."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

LOCALHOST = "127.0.0.1"


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port nobody listens on right now (the OS picks it; a tiny race remains until it is bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def preferred_port(port: int | None, host: str = LOCALHOST) -> int:
    """``port`` when nothing listens on it (so URLs stay the usual ones), else any free port."""
    return port if port and not port_open(host, port) else free_port(host)


def port_open(host: str, port: int, *, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def http_status(url: str, *, timeout_s: float = 2.0) -> int | None:
    """The status code of ``GET url``, or ``None`` when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (local URLs only)
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None
