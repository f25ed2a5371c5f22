"""A local MongoDB-wire store: SecantusDB's ``secantusd-py`` (GPL; a dev and test tool, never in an image)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Final

from devstack.errors import InfrastructureUnavailable
from devstack.net import LOCALHOST, free_port
from devstack.processes import ManagedProcess, ProcessSpec, ThrowawayServer

SERVER_COMMAND: Final = "secantusd-py"
START_TIMEOUT_S: Final = 30.0
_PING_TIMEOUT_MS: Final = 500


def _server_executable() -> str:
    # Beside this interpreter first: the venv's console script, even when the venv is not activated.
    beside = Path(sys.executable).parent / SERVER_COMMAND
    found = str(beside) if beside.is_file() else shutil.which(SERVER_COMMAND)
    if found is None:
        raise InfrastructureUnavailable(
            f"{SERVER_COMMAND} is missing: run `uv sync` (it comes with the dev group), or set MONGODB_URL"
        )
    return found


def ping(url: str, *, timeout_ms: int = _PING_TIMEOUT_MS) -> bool:
    """Whether the store at ``url`` answers ``ping``."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    client: MongoClient[dict[str, object]] = MongoClient(
        url, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms
    )
    try:
        client.admin.command("ping")
    except PyMongoError:
        return False
    else:
        return True
    finally:
        client.close()


class LocalStore(ThrowawayServer):
    """``secantusd-py`` on a free local port with its data in a temporary folder; ``url`` once started."""

    def __init__(self, log_path: Path, *, start_timeout_s: float = START_TIMEOUT_S) -> None:
        self.log_path = log_path
        self.start_timeout_s = start_timeout_s
        self.url = ""
        super().__init__()

    def _start(self) -> None:
        executable = _server_executable()
        data_dir = self._new_work_dir("devstack-store-") / "data"
        port = free_port()
        # Retryable writes cost this development store ~15 ms each; production keeps the default.
        url = f"mongodb://{LOCALHOST}:{port}/?retryWrites=false"
        self._process = ManagedProcess(
            ProcessSpec(
                name="store",
                argv=[
                    executable,
                    "--host",
                    LOCALHOST,
                    "--port",
                    str(port),
                    "--storage-path",
                    str(data_dir),
                    "--log-level",
                    "WARNING",
                ],
                probe=lambda: ping(url),
                ready_timeout_s=self.start_timeout_s,
            ),
            self.log_path,
        ).start()
        self.url = url
