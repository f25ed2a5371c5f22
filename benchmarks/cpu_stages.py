"""The importer's CPU by stage, from samples of its processes' stacks (py-spy, a dev dependency).

py-spy reads a running process's Python stacks from outside (``--nonblocking``: without stopping
it) a hundred times a second and counts the samples in which a thread was running. Each sample is
put in the first stage below whose marks one of its frames carries; the stage's share of the
samples, times the CPU the processes used (from /proc), is its CPU. What runs in C (a JSON parse,
BSON encoding, a socket write, the collector) counts for the Python line that called it; the event
loop's own work (uvloop: waiting on sockets, reading them, running callbacks) shows as a stack
with no frame below the loop, ``event loop``.
"""

from __future__ import annotations

import collections
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, Final

#: (stage, marks): a sample is in the first stage one of whose marks is in one of its frames. Order
#: matters: the rate budget is waited for inside a fetch, the ledger's step inside a page.
STAGES: Final = (
    ("rate budget", ("adapters/rate_budget.py", "adapters/learned_limits.py")),
    ("fetch", ("ProcessorClient.get_json", ".fetch_page (", "_fetch (importer/")),
    ("normalize", ("_normalize (importer/", "_cancellations (importer/")),
    ("store records", ("adapters/mongo_records.py",)),
    ("publish records", ("publish_records", "aiokafka/producer/")),
    (
        "ledger, progress",
        ("adapters/mongo_page_ledger.py", "service/fan_out.py", "service/progress.py", "complete_import.py"),
    ),
    (
        "consume requests",
        ("aiokafka/consumer/", "contracts/runtime/consumer.py", "faststream/"),
    ),
    ("other store reads", ("pymongo/",)),
    ("Kafka responses", ("aiokafka/",)),
)
#: A thread blocked in one of these is waiting, not running, whatever py-spy thought.
_WAITING: Final = ("Condition.wait ", "Event.wait ", "Thread._wait_for_tstate_lock ")
EVENT_LOOP: Final = "event loop"
OTHER: Final = "other"
RATE_HZ: Final = 100


def stage_of(frames: list[str]) -> str | None:
    """The stage of one sample, ``None`` for a thread that only waits."""
    if frames and frames[-1].startswith(_WAITING):
        return None
    for stage, marks in STAGES:
        if any(mark in frame for frame in frames for mark in marks):
            return stage
    if frames and frames[-1].startswith(("Runner.run ", "run_until_complete ")):
        return EVENT_LOOP
    return OTHER


def samples_by_stage(raw: str) -> collections.Counter[str]:
    """py-spy's ``--format raw`` output (``frame;frame;... count`` a line) counted by stage."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        stage = stage_of(stack.split(";")) if stack and count.isdigit() else None
        if stage is not None:
            counts[stage] += int(count)
    return counts


class StageSampler:
    """py-spy on each importer process from :meth:`start` to :meth:`stop`."""

    def __init__(self, pids: list[int], out_dir: Path) -> None:
        self._pids = pids
        self._out_dir = out_dir
        self._spies: list[tuple[subprocess.Popen[bytes], Path, IO[bytes]]] = []
        self.error = ""

    def start(self) -> None:
        binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        for pid in self._pids:
            out = self._out_dir / f"importer-{pid}.stacks"
            log = (self._out_dir / f"py-spy-{pid}.log").open("wb")
            try:
                spy = subprocess.Popen(  # noqa: S603 - our own py-spy on our own importer processes
                    [
                        *(binary, "record", "--pid", str(pid), "--rate", str(RATE_HZ), "--nonblocking"),
                        *("--format", "raw", "--output", str(out)),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            except OSError as error:
                log.close()
                self.error = f"py-spy could not start: {error}"
                return
            self._spies.append((spy, out, log))

    def stop(self) -> collections.Counter[str]:
        """Stops sampling; the samples of every process, by stage."""
        counts: collections.Counter[str] = collections.Counter()
        for spy, out, log in self._spies:
            spy.send_signal(signal.SIGINT)  # py-spy writes what it sampled, then exits
            try:
                spy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                spy.kill()
            log.close()
            if out.exists():
                counts.update(samples_by_stage(out.read_text(errors="replace")))
            else:
                self.error = f"py-spy wrote no {out.name} (see its log beside)"
        return counts


def cpu_by_stage(counts: collections.Counter[str], cpu_s: float) -> dict[str, float]:
    """The processes' ``cpu_s`` shared out by the stages' samples, in seconds."""
    total = sum(counts.values())
    if not total:
        return {}
    return {stage: cpu_s * count / total for stage, count in counts.most_common()}
