"""Other Stripe importers run on the sandbox's data beside ours: tap-stripe, airbyte-source-stripe.

Each peer is installed from PyPI, at the version pinned in ``benchmarks/peers/<peer>.txt``, into its
own virtual environment (``--peers-dir``, by default ``.cache/peers``), never into the project's:

    uv run python benchmarks/peers.py --install          # create or refresh the environments
    uv run python benchmarks/importer_benchmark.py --small --peers tap-stripe,airbyte-source-stripe

Neither peer lets its configuration change Stripe's address, so each runs with
``benchmarks/peers/shim`` on its ``PYTHONPATH``: its ``sitecustomize`` sends what the peer's
``requests`` would send to ``https://api.stripe.com`` to the sandbox instead. No code of the peers
is kept in this repository, only their configuration (below) and the shim.

A peer reads the resources the importer reads (tap-stripe has no ``prices`` stream), in a full
refresh from a start date before the sample history, with its own defaults otherwise
(tap-stripe: 30-day windows, one request at a time, then the last 30 days of events for updates;
airbyte-source-stripe: 365-day slices, its concurrent workers and its 25/100 requests/s budget).
Its records are counted from the Singer/Airbyte messages it writes on stdout, timed as they arrive.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PEERS_DIR = HERE / "peers"
SHIM_DIR = PEERS_DIR / "shim"
DEFAULT_VENVS = HERE.parent / ".cache" / "peers"
STRIPE_REAL_BASE = "https://api.stripe.com"
#: Before the sample history (``sandbox.data``: 730 days before 2026-10-31).
START_DATE = "2024-10-01T00:00:00Z"
UV = shutil.which("uv") or "uv"
RESOURCES = ("customers", "products", "prices", "plans", "coupons", "subscriptions", "invoices")


@dataclass(frozen=True)
class Peer:
    name: str
    #: The executable the package installs in its environment's bin/.
    command: str
    #: Arguments of a sync, given the folder holding config.json and the catalog.
    read_args: tuple[str, ...]
    python: str = "3.11"


PEERS: dict[str, Peer] = {
    "tap-stripe": Peer(
        "tap-stripe", "tap-stripe", ("--config", "{dir}/config.json", "--catalog", "{dir}/catalog.json")
    ),
    "airbyte-source-stripe": Peer(
        "airbyte-source-stripe",
        "source-stripe",
        ("read", "--config", "{dir}/config.json", "--catalog", "{dir}/catalog.json"),
    ),
}


@dataclass
class PeerRun:
    name: str
    version: str = ""
    records: int = 0
    records_by_stream: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    #: From the process's start to its first record: its own start-up and first requests.
    first_record_s: float = 0.0
    records_per_s: float = 0.0
    #: Records a second from its first record to its last (start-up left out, kinder to the peer).
    records_per_s_after_start: float = 0.0
    cpu_s: float = 0.0
    requests: int = 0
    requests_by_endpoint: dict[str, int] = field(default_factory=dict)
    status_codes: dict[str, int] = field(default_factory=dict)
    exit_code: int = 0
    error: str = ""
    #: (seconds since start, records so far), one point per record batch, for the chart.
    timeline: list[tuple[float, int]] = field(default_factory=list)


def venv_python(venvs: Path, peer: Peer) -> Path:
    return venvs / peer.name / "bin" / "python"


def install(venvs: Path, names: list[str]) -> None:
    """Create each peer's own environment with uv and install its pinned requirements."""
    for name in names:
        peer = PEERS[name]
        target = venvs / peer.name
        subprocess.run([UV, "venv", "-q", "-p", peer.python, str(target)], check=True)  # noqa: S603
        subprocess.run(  # noqa: S603 - our own commands, no shell
            [
                UV,
                "pip",
                "install",
                "-q",
                "--python",
                str(target / "bin" / "python"),
                "-r",
                str(PEERS_DIR / f"{peer.name}.txt"),
            ],
            check=True,
        )
        print(f"{peer.name}: installed in {target}", flush=True)


def installed_version(venvs: Path, peer: Peer) -> str:
    found = subprocess.run(  # noqa: S603 - our own commands, no shell
        [
            str(venv_python(venvs, peer)),
            "-c",
            f"import importlib.metadata as m; print(m.version({peer.name!r}))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.strip()


def _environment(stripe_url: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in {"VIRTUAL_ENV", "PYTHONHOME"}}
    env.update(
        PYTHONPATH=str(SHIM_DIR),
        PEER_REAL_BASE=STRIPE_REAL_BASE,
        PEER_API_BASE=stripe_url,
        PYTHONUNBUFFERED="1",
    )
    return env


def _config(account_id: str, api_key: str) -> dict[str, Any]:
    return {"start_date": START_DATE, "account_id": account_id, "client_secret": api_key}


def _tap_stripe_catalog(command: Path, workdir: Path, env: dict[str, str]) -> dict[str, Any]:
    """tap-stripe's own discovered catalog, our resources selected (its others stay, unselected)."""
    found = subprocess.run(  # noqa: S603 - our own commands, no shell
        [str(command), "--config", str(workdir / "config.json"), "--discover"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    catalog: dict[str, Any] = json.loads(found.stdout)
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = stream["tap_stream_id"] in RESOURCES
    return catalog


def _airbyte_catalog(command: Path, workdir: Path, env: dict[str, str]) -> dict[str, Any]:
    """airbyte-source-stripe's discovered streams for our resources, as a full-refresh sync."""
    found = subprocess.run(  # noqa: S603 - our own commands, no shell
        [str(command), "discover", "--config", str(workdir / "config.json")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    for line in found.stdout.splitlines():
        message = json.loads(line) if line.startswith("{") else {}
        if message.get("type") == "CATALOG":
            streams = [
                {"stream": stream, "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"}
                for stream in message["catalog"]["streams"]
                if stream["name"] in RESOURCES
            ]
            return {"streams": streams}
    raise RuntimeError(f"airbyte-source-stripe discovered no catalog: {found.stderr[-2000:]}")


def prepare(venvs: Path, name: str, stripe_url: str, account_id: str, api_key: str) -> Path:
    """Write the peer's config and catalog (discovery is not timed) into a fresh folder."""
    peer = PEERS[name]
    command = venvs / peer.name / "bin" / peer.command
    if not command.exists():
        raise FileNotFoundError(f"{command} is missing: run benchmarks/peers.py --install first")
    workdir = Path(tempfile.mkdtemp(prefix=f"peer-{name}-"))
    (workdir / "config.json").write_text(json.dumps(_config(account_id, api_key)))
    env = _environment(stripe_url)
    discover = _tap_stripe_catalog if name == "tap-stripe" else _airbyte_catalog
    (workdir / "catalog.json").write_text(json.dumps(discover(command, workdir, env)))
    return workdir


def _record_stream(line: str) -> str | None:
    """The stream of a Singer or Airbyte RECORD message, or None for any other line."""
    if '"RECORD"' not in line:
        return None
    message = json.loads(line)
    if message.get("type") != "RECORD":
        return None
    if "stream" in message:  # Singer: the stream beside the record
        return str(message["stream"])
    return str(message["record"]["stream"])  # Airbyte: the stream inside the record


def run(venvs: Path, name: str, workdir: Path, stripe_url: str, log: Path | None = None) -> PeerRun:
    """One timed sync of the peer against the sandbox; its records counted as it writes them."""
    peer = PEERS[name]
    result = PeerRun(name=name, version=installed_version(venvs, peer))
    command = [str(venvs / peer.name / "bin" / peer.command)] + [
        arg.format(dir=workdir) for arg in peer.read_args
    ]
    counts: Counter[str] = Counter()
    stderr = (log or workdir / "stderr.log").open("w")
    started = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603 - our own command, no shell
        command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=_environment(stripe_url)
    )
    first = last = 0.0
    cpu = [0.0]
    sampler = threading.Thread(target=_sample_cpu, args=(process, cpu), daemon=True)
    sampler.start()
    assert process.stdout is not None
    for line in process.stdout:
        stream = _record_stream(line)
        if stream is None:
            continue
        counts[stream] += 1
        last = time.perf_counter() - started
        first = first or last
        total = sum(counts.values())
        if total % 100 == 0:
            result.timeline.append((round(last, 3), total))
    result.exit_code = process.wait()
    result.wall_s = round(time.perf_counter() - started, 2)
    sampler.join()
    stderr.close()
    result.cpu_s = round(cpu[0], 2)
    result.records_by_stream = dict(sorted(counts.items()))
    result.records = sum(counts.values())
    result.timeline.append((round(last, 3), result.records))
    result.first_record_s = round(first, 2)
    result.records_per_s = round(result.records / max(result.wall_s, 1e-9), 1)
    result.records_per_s_after_start = round(result.records / max(last - first, 1e-9), 1)
    if result.exit_code != 0:
        result.error = f"exit {result.exit_code}, see {log or workdir / 'stderr.log'}"
    return result


def _sample_cpu(process: subprocess.Popen[str], out: list[float]) -> None:
    """CPU seconds of the peer's process tree (its workers included), sampled until it exits."""
    while process.poll() is None:
        out[0] = max(out[0], _tree_cpu(process.pid))
        time.sleep(0.2)


def _tree_cpu(root: int) -> float:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    tree = {root}
    grew = True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= found
        grew = bool(found)
    ticks = os.sysconf("SC_CLK_TCK")
    used = 0.0
    for pid in tree:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used += (int(fields[11]) + int(fields[12])) / ticks
    return used


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--install", action="store_true", help="create the peers' environments")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated peer names")
    parser.add_argument("--peers-dir", type=Path, default=DEFAULT_VENVS)
    parser.add_argument("--stripe-url", help="run the peers once against a running fake Stripe")
    parser.add_argument("--account-id", default="acct_1SandboxAcme0001")
    parser.add_argument("--api-key", default="")
    args = parser.parse_args(argv)
    names = [name for name in args.peers.split(",") if name]
    if args.install:
        install(args.peers_dir, names)
    if args.stripe_url:
        for name in names:
            workdir = prepare(args.peers_dir, name, args.stripe_url, args.account_id, args.api_key)
            outcome = run(args.peers_dir, name, workdir, args.stripe_url)
            outcome.timeline = []
            print(json.dumps(outcome.__dict__), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
