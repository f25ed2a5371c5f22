"""Runs the stack's OS processes: start with a given env, log to a file, wait until ready, kill, restart."""

from __future__ import annotations

import abc
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from devstack.errors import ProcessNotReady
from devstack.net import LOCALHOST, http_status

#: Checks once whether a process is ready to serve; polled until it says yes or time runs out.
ReadinessProbe = Callable[[], bool]

#: Variables a child inherits from this process; everything else it gets is set explicitly, so a
#: developer's shell (a stray ``SMTP_PASSWORD``, say) never leaks into a service.
INHERITED_ENV_VARS = (
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "JAVA_HOME",
    "VIRTUAL_ENV",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "COVERAGE_PROCESS_START",
)

READY_POLL_INTERVAL_S = 0.1
DEFAULT_READY_TIMEOUT_S = 60.0
DEFAULT_STOP_TIMEOUT_S = 5.0
LOG_TAIL_LINES = 40

_PR_SET_PDEATHSIG = 1


def http_ready(
    port: int, paths: Sequence[str] = ("/livez", "/readyz"), host: str = LOCALHOST
) -> ReadinessProbe:
    """Ready when every path answers 200, checked in order (liveness first, then readiness)."""

    def probe() -> bool:
        return all(http_status(f"http://{host}:{port}{path}") == 200 for path in paths)

    return probe


def http_answers(*urls: str) -> ReadinessProbe:
    """Ready once every URL gives any HTTP answer below 500 (for servers without health routes)."""

    def answers(url: str) -> bool:
        status = http_status(url)
        return status is not None and status < 500

    def probe() -> bool:
        return all(answers(url) for url in urls)

    return probe


def child_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment of a child: the few inherited basics, then ``env`` on top."""
    inherited = {name: os.environ[name] for name in INHERITED_ENV_VARS if name in os.environ}
    return {**inherited, "PYTHONUNBUFFERED": "1", **env}


def python_module(module: str, *args: str) -> tuple[str, ...]:
    """The argv that runs ``python -m module args`` with this interpreter (the workspace venv)."""
    return (sys.executable, "-m", module, *args)


@dataclass(frozen=True)
class ProcessSpec:
    """What to run and how to know it is ready."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    probe: ReadinessProbe | None = None
    ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S


def _death_signal_setter() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGKILL the child when the thread that started it ends.

    libc is loaded here, in the parent: the hook runs between fork and exec, where loading a library
    could deadlock on a lock another thread held at fork time.
    """
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        # Tied to a worker thread, the signal would fire when that thread ends, not the stack.
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    return set_death_signal


class ManagedProcess:
    """One OS process of the stack, in its own process group, its output appended to ``log_path``."""

    def __init__(self, spec: ProcessSpec, log_path: Path) -> None:
        self.spec = spec
        self.log_path = log_path
        self._popen: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen else None

    def start(self, *, wait: bool = True) -> Self:
        """Start the process (again, after a stop or kill); with ``wait``, return once it is ready."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== devstack: start #{self.starts} of {self.name}: {self._command()}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                list(self.spec.argv),
                env=child_env(self.spec.env),
                cwd=self.spec.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: Ctrl-C reaches only us, we stop it in order
                preexec_fn=_death_signal_setter(),  # noqa: PLW1509
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout_s: float | None = None) -> None:
        """Poll the readiness probe; raise ``ProcessNotReady`` (with the log's tail) on exit or timeout."""
        timeout = self.spec.ready_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise ProcessNotReady(
                    f"{self.name} exited with code {self.returncode} before it was ready"
                    f" (log: {self.log_path})\n{self.log_tail()}"
                )
            if self.spec.probe is None or self.spec.probe():
                return
            if time.monotonic() > deadline:
                raise ProcessNotReady(
                    f"{self.name} was not ready after {timeout:.0f} s"
                    f" (log: {self.log_path})\n{self.log_tail()}"
                )
            time.sleep(READY_POLL_INTERVAL_S)

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash would; no cleanup runs in the child."""
        self._signal(signal.SIGKILL)
        if self._popen is not None:
            self._popen.wait()

    def stop(self, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout_s``."""
        if not self.running or self._popen is None:
            return
        self._signal(signal.SIGTERM)
        try:
            self._popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
        else:
            self._signal(signal.SIGKILL)  # whatever the group left behind

    def restart(self, *, wait: bool = True) -> Self:
        """Stop if running, then start with the same argv and env."""
        self.stop()
        return self.start(wait=wait)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log yet)"
        return "\n".join(text.splitlines()[-lines:])

    def _signal(self, sig: signal.Signals) -> None:
        if self._popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, sig)

    def _command(self) -> str:
        return " ".join(self.spec.argv)

    def __enter__(self) -> Self:
        return self if self.running else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"ManagedProcess({self.name!r}, pid={self.pid}, running={self.running})"


class ProcessRunner:
    """Starts named processes, each logging to ``<log_dir>/<name>.log``, and stops them all, newest first."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._processes: dict[str, ManagedProcess] = {}

    def start(self, spec: ProcessSpec, *, wait: bool = True) -> ManagedProcess:
        """Start one process; with ``wait``, return once it is ready."""
        return self.start_all([spec], wait=wait)[0]

    def start_all(self, specs: Iterable[ProcessSpec], *, wait: bool = True) -> list[ManagedProcess]:
        """Start several at once and then wait for each, so their start-ups overlap."""
        started: list[ManagedProcess] = []
        for spec in specs:
            if spec.name in self._processes and self._processes[spec.name].running:
                raise RuntimeError(f"a process named {spec.name!r} is already running")
            process = ManagedProcess(spec, self.log_dir / f"{spec.name}.log")
            self._processes[spec.name] = process
            started.append(process.start(wait=False))
        if wait:
            for process in started:
                process.wait_ready()
        return started

    def __getitem__(self, name: str) -> ManagedProcess:
        return self._processes[name]

    def __contains__(self, name: object) -> bool:
        return name in self._processes

    def __iter__(self) -> Iterator[ManagedProcess]:
        return iter(list(self._processes.values()))

    def stop_all(self, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> None:
        """Stop every process, the last started first (services before what they depend on)."""
        for process in reversed(list(self._processes.values())):
            process.stop(timeout_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_all()


class ThrowawayServer(abc.ABC):
    """A server process whose data lives in a temporary folder: ``stop()`` ends the one, deletes the other."""

    stop_timeout_s = DEFAULT_STOP_TIMEOUT_S

    def __init__(self) -> None:
        self._process: ManagedProcess | None = None
        self._work_dir: Path | None = None

    def start(self) -> Self:
        """Start the server and return once it serves; a failed start leaves nothing behind."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    @abc.abstractmethod
    def _start(self) -> None:
        """Start the server (``_new_work_dir``, ``_process``) and wait until it serves."""

    def _new_work_dir(self, prefix: str) -> Path:
        self._work_dir = Path(tempfile.mkdtemp(prefix=prefix))
        return self._work_dir

    @property
    def process(self) -> ManagedProcess | None:
        return self._process

    def stop(self) -> None:
        """SIGTERM the server, SIGKILL it after ``stop_timeout_s``, delete its data."""
        if self._process is not None:
            self._process.stop(self.stop_timeout_s)
            self._process = None
        if self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
