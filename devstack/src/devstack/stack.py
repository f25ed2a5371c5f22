"""The three services as OS processes (``python -m <service>``) configured from one ``StackSettings``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from devstack.processes import ManagedProcess, ProcessRunner, ProcessSpec, http_ready, python_module
from devstack.settings import SERVICES, StackSettings

SERVICE_READY_TIMEOUT_S: Final = 60.0


def service_spec(
    settings: StackSettings,
    service: str,
    *,
    env: Mapping[str, str] | None = None,
    ready_timeout_s: float = SERVICE_READY_TIMEOUT_S,
) -> ProcessSpec:
    """How to run ``service``: ready once ``/livez`` and then ``/readyz`` answer 200 on its ``HTTP_PORT``."""
    return ProcessSpec(
        name=service,
        argv=python_module(service),
        env=settings.service_env(service, **(env or {})),
        probe=http_ready(settings.http_ports[service]),
        ready_timeout_s=ready_timeout_s,
    )


class ServiceStack:
    """Runs services against ``settings``, logging to ``<log_dir>/<service>.log``; ``stop()`` ends them."""

    def __init__(self, settings: StackSettings, log_dir: Path) -> None:
        self.settings = settings
        self.runner = ProcessRunner(log_dir)

    def start(
        self,
        services: Iterable[str] = SERVICES,
        *,
        env: Mapping[str, Mapping[str, str]] | None = None,
        wait: bool = True,
    ) -> Self:
        """Start ``services`` at once (``env``: extra variables per service); ``wait`` until all are ready."""
        overrides = env or {}
        self.runner.start_all(
            [service_spec(self.settings, s, env=overrides.get(s)) for s in services],
            wait=wait,
        )
        return self

    def __getitem__(self, service: str) -> ManagedProcess:
        return self.runner[service]

    def url(self, service: str, path: str = "") -> str:
        """``http://127.0.0.1:<port><path>`` of ``service``."""
        return self.settings.base_url(service) + path

    def kill(self, service: str) -> None:
        """SIGKILL ``service`` (a crash); ``restart`` brings it back with the same environment."""
        self.runner[service].kill()

    def restart(self, service: str, *, wait: bool = True) -> ManagedProcess:
        return self.runner[service].restart(wait=wait)

    def jwt(self, account_id: str) -> str:
        return self.settings.jwt(account_id)

    def stop(self) -> None:
        self.runner.stop_all()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
