"""End-to-end benchmark of the importer against a fake Stripe with live-mode limits, and a baseline.

    uv run python benchmarks/importer_benchmark.py            # the full run (about 10 minutes)
    uv run python benchmarks/importer_benchmark.py --baseline-pages 150   # a shorter baseline sample
    uv run python benchmarks/importer_benchmark.py --size 1m --skip-baseline   # memory at ~1M objects

One run starts Kafka and the store (``devstack``; ``KAFKA_BOOTSTRAP_SERVERS``/``MONGODB_URL`` reuse
running ones), the fake Stripe as its own process (live-mode limits: 100 requests/s per account,
25 per endpoint; every list page answered after 250 ms; the ``benchmark`` sample dataset, over
100k objects), measures the store's own bulk-insert rate, runs ``python -m importer`` process(es)
through one import, then a baseline that pages every resource one after the other with the stripe
SDK's ``auto_paging_iter``. It prints records/s, the limit bound, the ratios, the 429s, the store's
rate, the importer's CPU (in all, and by stage from samples of its stacks: ``cpu_stages.py``;
``--no-cpu-stages`` leaves the sampler out) and its peak memory; ``--json`` writes the figures to a
file as well.

The limit bound is the best any importer can do under the limits: every resource needs
``ceil(n / 100)`` pages, the account allows 100 pages/s and each endpoint 25, so an import takes at
least ``max(total_pages / 100, max_pages_of_one_resource / 25)`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import math
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from contracts.events import (
    ImportCompleted,
    ImportProgressed,
    Mode,
    Processor,
)
from cpu_stages import StageSampler, cpu_by_stage
from devstack.infra import provide_kafka, provide_store
from devstack.net import free_port
from devstack.processes import ManagedProcess, ProcessSpec, http_answers, http_ready, python_module
from devstack.settings import new_credentials_key
from import_kit import connected, run_to_completion
from pymongo import MongoClient
from sandbox.data import DatasetOptions, generate_dataset

from sandbox import config as sandbox_config

PAGE_SIZE = 100
#: The small account of the goals: 2,000 customers (with one invoice per subscription, 6,601 objects).
SMALL_CUSTOMERS = 2_000
#: Larger generated histories for the importer's memory against the import's size (``--size``): about
#: 8.5 objects a customer with the default 24 invoices a subscription.
LARGE_CUSTOMERS = {"250k": 29_500, "500k": 59_000, "1m": 118_000}
LATENCY_MS = 250
ACCOUNT_RATE_PER_S = 100.0
ENDPOINT_RATE_PER_S = 25.0
STRIPE_SDK_RESOURCES = {
    "customers": "Customer",
    "products": "Product",
    "prices": "Price",
    "plans": "Plan",
    "coupons": "Coupon",
    "subscriptions": "Subscription",
    "invoices": "Invoice",
}


@dataclass
class Figures:
    objects: int = 0
    objects_by_resource: dict[str, int] = field(default_factory=dict)
    limit_bound_records_per_s: float = 0.0
    limit_bound_s: float = 0.0
    import_s: float = 0.0
    pages_phase_s: float = 0.0
    records_per_s: float = 0.0
    pages_phase_records_per_s: float = 0.0
    ratio_to_bound: float = 0.0
    pages_phase_ratio_to_bound: float = 0.0
    requests: int = 0
    requests_needed: int = 0
    rate_limited_429: int = 0
    #: The endpoint with the most pages, which sets the bound here: its requests against its pages,
    #: and its requests answered per second of the run (from the fake's own count).
    binding_endpoint: str = ""
    binding_requests: int = 0
    binding_pages_needed: int = 0
    binding_per_second: list[int] = field(default_factory=list)
    rate_limited_share: float = 0.0
    store_bulk_insert_per_s: float = 0.0
    ratio_to_store_or_bound: float = 0.0
    baseline_records_per_s: float = 0.0
    baseline_pages: int = 0
    ratio_to_baseline: float = 0.0
    importer_cpu_s: float = 0.0
    importer_cpu_ms_per_1k_records: float = 0.0
    machine_busy_share: float = 0.0
    #: CPU seconds each part of the run used during the import (this machine: two cores for all).
    cpu_s_by_role: dict[str, float] = field(default_factory=dict)
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)
    cpu_floor_s: float = 0.0
    #: The importer's CPU by stage, in ms per 1000 records (cpu_stages.py: samples of its stacks).
    importer_cpu_ms_per_1k_by_stage: dict[str, float] = field(default_factory=dict)
    cpu_stages_note: str = ""
    importer_peak_rss_mb: list[float] = field(default_factory=list)
    #: The fake Stripe, which holds the whole history in memory: seconds from its start until it
    #: answered (building the history), and its peak resident memory.
    fake_ready_s: float = 0.0
    fake_peak_rss_mb: float = 0.0
    importer_rss_mb_by_progress: dict[str, float] = field(default_factory=dict)
    counts_exact: bool = False
    importers: int = 1
    page_concurrency: int = 0
    #: (seconds since the trigger, records stored so far), from the ledger's finished pages.
    timeline: list[tuple[float, int]] = field(default_factory=list)
    #: Other importers run on the same data in the same run (``peers.py``), as their figures.
    peers: list[dict[str, Any]] = field(default_factory=list)
    #: When and under what load the figures were taken (the machine is shared; say so).
    taken_at: str = ""
    load_average: list[float] = field(default_factory=list)
    load_average_end: list[float] = field(default_factory=list)
    #: Seconds a pure-Python reference loop took at the start: how fast this machine is.
    reference_loop_s: float = 0.0
    #: ``--warm-up``: connect → ImportCompleted of the untimed import run first (the same history
    #: under another account), on the freshly started broker, store and importers.
    cold_import_s: float | None = None
    command: str = ""


def limit_bound(counts: dict[str, int]) -> tuple[float, int]:
    """The shortest possible import in seconds under the limits, and the pages it needs."""
    pages = {resource: max(1, math.ceil(count / PAGE_SIZE)) for resource, count in counts.items()}
    total = sum(pages.values())
    return max(total / ACCOUNT_RATE_PER_S, max(pages.values()) / ENDPOINT_RATE_PER_S), total


def binding_endpoint(figures: Figures, stats: dict[str, Any], counts: dict[str, int]) -> None:
    """Fill in what the endpoint of the largest resource served, from the fake's request stats."""
    resource = max(counts, key=lambda name: counts[name])
    label = f"GET /v1/{resource}"
    figures.binding_endpoint = resource
    figures.binding_requests = int(stats.get("by_endpoint", {}).get(label, 0))
    figures.binding_pages_needed = math.ceil(counts[resource] / PAGE_SIZE)
    timeline = {int(second): int(n) for second, n in stats.get("timeline", {}).get(label, {}).items()}
    figures.binding_per_second = [timeline.get(second, 0) for second in range(max(timeline, default=-1) + 1)]


def store_bulk_insert_rate(
    mongodb_url: str, database: str, documents: list[dict[str, Any]], batch: int
) -> float:
    """Documents per second the store inserts in ``batch``-sized ``insert_many`` calls, one client."""
    # The importer's client options (no driver-retried writes), so the two rates compare.
    client: MongoClient[dict[str, Any]] = MongoClient(mongodb_url, tz_aware=True, retryWrites=False)
    collection = client[database]["bulk_write_probe"]
    collection.drop()
    started = time.perf_counter()
    for start in range(0, len(documents), batch):
        collection.insert_many(
            [{**doc, "_id": f"probe:{start + i}"} for i, doc in enumerate(documents[start : start + batch])],
            ordered=False,
        )
    elapsed = time.perf_counter() - started
    collection.drop()
    client.close()
    return len(documents) / elapsed


def probe_documents(invoices: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """Canonical invoice records shaped like the importer's, from the dataset's own invoices."""
    from importer.adapters.mongo_records import record_document
    from importer.domain.normalize import normalizer_for
    from importer.domain.source import NormalizationContext

    normalizer = normalizer_for(Processor.STRIPE)
    context = NormalizationContext(account_id="bench_probe")
    now = datetime.now(UTC)
    out: list[dict[str, Any]] = []
    for raw in invoices[:count]:
        for record in normalizer.normalize("invoices", raw, context):
            document = record_document(record, "probe", now)
            document.pop("_id")
            out.append(document)
    return out


class RssSampler:
    """Samples a process's resident memory (and its peak) from /proc while the import runs."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), sum(_rss_mb(pid, "VmRSS") for pid in self.pids)))
            self._stop.wait(0.25)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join()
        return [_rss_mb(pid, "VmHWM") for pid in self.pids]


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


#: What each process of the run is, by its command line.
ROLES = (
    ("secantusd", "store"),
    ("kafka.Kafka", "kafka"),
    ("-m sandbox", "fake Stripe"),
    ("-m importer", "importer"),
)


def cpu_by_role(roles: tuple[tuple[str, str], ...] = ROLES) -> dict[str, float]:
    """CPU seconds used so far by this run's descendant processes, by role (store, Kafka, ...)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    mine = {os.getpid()}
    grew = True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in mine} - mine
        mine |= found
        grew = bool(found)
    used: dict[str, float] = {}
    for pid in mine - {os.getpid()}:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        role = next((name for marker, name in roles if marker in command), None)
        if role is not None:
            used[role] = used.get(role, 0.0) + cpu_seconds(pid)
    return used


def reference_loop_s() -> float:
    """Seconds one core takes for ``sum(i * i for i in range(10**7))``: machines of one kind differ
    (0.67-0.89 s on the development machine of 2026-12-03), so figures taken on two need it beside them."""
    started = time.perf_counter()
    sum(i * i for i in range(10**7))
    return round(time.perf_counter() - started, 2)


def machine_ticks() -> tuple[int, int]:
    """Busy and total CPU ticks of the whole machine so far (every process, every core)."""
    values = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def _rss_mb(pid: int, field_name: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def run_import(  # noqa: PLR0917
    kafka: str,
    mongodb_url: str,
    database: str,
    credentials_key: str,
    live_key: str,
    expected: dict[str, int],
    account_id: str | None = None,
    timeout_s: float = 1800.0,
) -> tuple[ImportCompleted, float, float, dict[float, float], list[tuple[float, int]]]:
    """Connect the fake account (as ``account_id``, or a new one), trigger the import, wait for
    ``ImportCompleted``."""
    client: MongoClient[dict[str, Any]] = MongoClient(mongodb_url, tz_aware=True)
    db = client[database]
    trigger = connected(
        db,
        credentials_key,
        account_id=account_id or f"bench_{uuid.uuid4().hex[:10]}",
        processor=Processor.STRIPE,
        mode=Mode.LIVE,
        processor_account_id=sandbox_config.SAMPLE_STRIPE_ACCOUNT_ID,
        api_key=live_key,
    )
    total = sum(expected.values())
    progress_at: dict[float, float] = {}

    def progressed(event: ImportProgressed) -> None:
        done = sum(count.imported for count in event.resources.values()) / max(1, total)
        progress_at[round(done, 2)] = time.perf_counter()

    run = await run_to_completion(kafka, trigger, timeout_s=timeout_s, on_progress=progressed)
    elapsed, import_id = run.elapsed_s, run.outcome.import_id
    pages = db.import_pages
    first = pages.find_one({"import_id": import_id}, sort=[("planned_at", 1)])
    last = pages.find_one({"import_id": import_id, "status": "done"}, sort=[("done_at", -1)])
    pages_phase = (last["done_at"] - first["planned_at"]).total_seconds() if first and last else elapsed
    timeline = ledger_timeline(pages, import_id, run.sent_at)
    client.close()
    return run.outcome, elapsed, pages_phase, progress_at, timeline


def ledger_timeline(pages: Any, import_id: str, started_at: datetime) -> list[tuple[float, int]]:
    """Records stored so far against seconds since the trigger, one point per finished page."""
    done = pages.find({"import_id": import_id, "status": "done"}, {"done_at": 1, "objects": 1})
    points = sorted(
        ((page["done_at"] - started_at).total_seconds(), int(page.get("objects") or 0)) for page in done
    )
    out: list[tuple[float, int]] = []
    total = 0
    for at, objects in points:
        total += objects
        out.append((round(at, 3), total))
    return out


def run_baseline(stripe_url: str, live_key: str, max_pages: int | None) -> tuple[float, int, int]:
    """Every resource paged one after the other with the stripe SDK; records/s, records, pages."""
    import stripe

    stripe.api_key = live_key
    stripe.api_base = stripe_url
    stripe.max_network_retries = 2
    records = pages = 0
    started = time.perf_counter()
    for resource, class_name in STRIPE_SDK_RESOURCES.items():
        params: dict[str, Any] = {"limit": PAGE_SIZE}
        if resource == "subscriptions":
            params["status"] = "all"
        listing = getattr(stripe, class_name).list(**params)
        for _ in listing.auto_paging_iter():
            records += 1
            if records % PAGE_SIZE == 1:
                pages += 1
            if max_pages is not None and pages > max_pages:
                break
        if max_pages is not None and pages > max_pages:
            break
    return records / (time.perf_counter() - started), records, pages


def run_peer(  # noqa: PLR0917
    name: str, stripe_url: str, live_key: str, venvs: Path | None, log_dir: Path, ours_per_s: float
) -> dict[str, Any]:
    """One other importer through the same sandbox data; its figures beside ours."""
    import peers

    venvs = venvs or peers.DEFAULT_VENVS
    print(f"peer {name}: discovering its catalog (not timed) ...", flush=True)
    workdir = peers.prepare(venvs, name, stripe_url, sandbox_config.SAMPLE_STRIPE_ACCOUNT_ID, live_key)
    reset_sandbox_stats(stripe_url)
    busy_before, total_before = machine_ticks()
    print(f"peer {name}: syncing ...", flush=True)
    outcome = peers.run(venvs, name, workdir, stripe_url, log_dir / f"peer-{name}.log")
    busy_after, total_after = machine_ticks()
    stats = sandbox_stats(stripe_url)
    outcome.requests = int(stats.get("requests_total", 0))
    outcome.requests_by_endpoint = {key: int(value) for key, value in stats.get("by_endpoint", {}).items()}
    outcome.status_codes = {key: int(value) for key, value in stats.get("by_status", {}).items()}
    found = asdict(outcome)
    found["ratio_ours_to_peer"] = round(ours_per_s / max(outcome.records_per_s, 1e-9), 1)
    after_start = max(outcome.records_per_s_after_start, 1e-9)
    found["ratio_ours_to_peer_after_start"] = round(ours_per_s / after_start, 1)
    found["machine_busy_share"] = round((busy_after - busy_before) / max(1, total_after - total_before), 3)
    return found


def sandbox_stats(stripe_url: str) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{stripe_url}/_sandbox/stats", timeout=10).json()
    return stats


def reset_sandbox_stats(stripe_url: str) -> None:
    httpx.delete(f"{stripe_url}/_sandbox/stats", timeout=10).raise_for_status()


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0912, PLR0915 - one run, told in order
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--size",
        default="benchmark",
        choices=("small", "medium", "benchmark", *LARGE_CUSTOMERS),
        help="the sample dataset, or a larger generated history: 250k, 500k, 1m objects (about)",
    )
    parser.add_argument(
        "--small",
        action="store_true",
        help=f"the small account: {SMALL_CUSTOMERS} customers, one invoice per subscription (6,601 objects)",
    )
    parser.add_argument(
        "--peers",
        default="",
        help="comma-separated other importers run on the same data after ours (benchmarks/peers.py)",
    )
    parser.add_argument("--peers-dir", type=Path, default=None, help="their venvs (peers.py --install)")
    parser.add_argument(
        "--report", type=Path, default=None, help="write a markdown report (and a PNG chart) into this folder"
    )
    parser.add_argument("--customers", type=int, default=None, help="overrides --size")
    parser.add_argument(
        "--invoices-per-subscription",
        type=int,
        default=DatasetOptions.max_invoices_per_subscription,
        help="fewer invoices per subscription (annual plans): the account limit, not one endpoint's, binds",
    )
    parser.add_argument("--importers", type=int, default=1, help="importer processes sharing the import")
    parser.add_argument(
        "--page-concurrency", type=int, default=None, help="PAGE_CONCURRENCY of each importer"
    )
    parser.add_argument("--baseline-pages", type=int, default=None, help="stop the baseline after N pages")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--importer-log-level", default="WARNING", help="INFO logs one line per page")
    parser.add_argument(
        "--importer-env", action="append", default=[], metavar="NAME=VALUE", help="extra importer setting"
    )
    parser.add_argument(
        "--no-cpu-stages",
        action="store_true",
        help="do not sample the importer's stacks for its CPU by stage (py-spy)",
    )
    parser.add_argument(
        "--warm-up",
        action="store_true",
        help="first run one untimed import of the same history under another account, so the"
        " measured one meets a broker, store and importers that have run before (as in production)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--log-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.small:
        args.customers = SMALL_CUSTOMERS
        args.invoices_per_subscription = 1

    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="importer-benchmark-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"logs: {log_dir}", flush=True)
    figures = Figures(
        importers=args.importers,
        taken_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        load_average=[round(value, 1) for value in os.getloadavg()],
        reference_loop_s=reference_loop_s(),
        command="uv run python benchmarks/importer_benchmark.py " + " ".join(argv or sys.argv[1:]),
    )

    print("generating the dataset ...", flush=True)
    dataset_options = DatasetOptions.for_size(
        "benchmark" if args.size in LARGE_CUSTOMERS else args.size,
        chargebee=False,
        max_invoices_per_subscription=args.invoices_per_subscription,
    )
    if args.size in LARGE_CUSTOMERS:
        dataset_options = replace(dataset_options, customers=LARGE_CUSTOMERS[args.size])
    if args.customers is not None:
        dataset_options = replace(dataset_options, customers=args.customers)
    expected, probe = counts_and_probe(dataset_options)
    figures.objects = sum(expected.values())
    figures.objects_by_resource = expected
    figures.limit_bound_s, figures.requests_needed = limit_bound(expected)
    figures.limit_bound_records_per_s = figures.objects / figures.limit_bound_s

    kafka = provide_kafka(log_dir)
    store = provide_store(log_dir)
    processes: list[ManagedProcess] = []
    try:
        database = f"bench_{uuid.uuid4().hex[:8]}"
        store_url = store.address
        print("measuring the store's bulk-insert rate ...", flush=True)
        figures.store_bulk_insert_per_s = store_bulk_insert_rate(store_url, database, probe, batch=1000)
        del probe

        stripe_port = free_port()
        sandbox = ManagedProcess(
            ProcessSpec(
                name="sandbox",
                argv=python_module(
                    "sandbox",
                    "--only",
                    "stripe",
                    "--customers",
                    str(dataset_options.customers),
                    "--invoices-per-subscription",
                    str(dataset_options.max_invoices_per_subscription),
                    "--stripe-port",
                    str(stripe_port),
                    "--stripe-rate-limits",
                    "--latency-ms",
                    str(LATENCY_MS),
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ),
                probe=http_answers(f"http://127.0.0.1:{stripe_port}/_sandbox/stats"),
                # The fake builds the whole history before it answers: ~1 min a million objects idle.
                ready_timeout_s=max(180.0, figures.objects / 1000),
            ),
            log_dir / "sandbox.log",
        )
        fake_started = time.perf_counter()
        processes.append(sandbox.start())
        figures.fake_ready_s = round(time.perf_counter() - fake_started, 1)
        stripe_url = f"http://127.0.0.1:{stripe_port}"
        live_key = sandbox_config.live_stripe_key()
        credentials_key = new_credentials_key()

        importers = []
        for index in range(args.importers):
            port = free_port()
            env = {
                "KAFKA_BOOTSTRAP_SERVERS": kafka.address,
                "MONGODB_URL": store_url,
                "MONGODB_DATABASE": database,
                "HTTP_PORT": str(port),
                "API_JWT_SECRET": uuid.uuid4().hex,
                "CREDENTIALS_KEYS": credentials_key,
                "STRIPE_API_BASE": stripe_url,
                "CHARGEBEE_API_URL_TEMPLATE": "http://127.0.0.1:9/{site}",
                "OTEL_SDK_DISABLED": "true",
                "LOG_LEVEL": args.importer_log_level,
            }
            if args.page_concurrency:
                env["PAGE_CONCURRENCY"] = str(args.page_concurrency)
            env.update(item.split("=", 1) for item in args.importer_env)
            importers.append(
                ManagedProcess(
                    ProcessSpec(
                        name=f"importer-{index}",
                        argv=python_module("importer"),
                        env=env,
                        probe=http_ready(port),
                        ready_timeout_s=60,
                    ),
                    log_dir / f"importer-{index}.log",
                )
            )
        for process in importers:
            processes.append(process.start())
        figures.page_concurrency = args.page_concurrency or 48
        reset_sandbox_stats(stripe_url)

        if args.warm_up:
            print("warming up: one untimed import under another account ...", flush=True)
            _, figures.cold_import_s, *_ = asyncio.run(
                run_import(
                    kafka.address,
                    store_url,
                    database,
                    credentials_key,
                    live_key,
                    expected,
                    timeout_s=max(1800.0, figures.objects / 200),
                )
            )
            figures.cold_import_s = round(figures.cold_import_s, 2)
            time.sleep(2.0)  # the fake's and the importer's rate buckets fill up again
            reset_sandbox_stats(stripe_url)
        print("importing ...", flush=True)
        pids = [process.pid or 0 for process in importers]
        sampler = RssSampler(pids)
        sampler.start()
        stages = None if args.no_cpu_stages else StageSampler(pids, log_dir)
        if stages is not None:
            stages.start()
        roles_before = cpu_by_role()
        busy_before, total_before = machine_ticks()
        completed, elapsed, pages_phase, progress_at, figures.timeline = asyncio.run(
            run_import(
                kafka.address,
                store_url,
                database,
                credentials_key,
                live_key,
                expected,
                timeout_s=max(1800.0, figures.objects / 200),
            )
        )
        figures.load_average_end = [round(value, 1) for value in os.getloadavg()]
        busy_after, total_after = machine_ticks()
        used = {role: seconds - roles_before.get(role, 0.0) for role, seconds in cpu_by_role().items()}
        if stages is not None:
            by_stage = cpu_by_stage(stages.stop(), used.get("importer", 0.0))
            figures.importer_cpu_ms_per_1k_by_stage = {
                stage: round(seconds * 1e6 / figures.objects, 1) for stage, seconds in by_stage.items()
            }
            figures.cpu_stages_note = stages.error
        figures.cpu_s_by_role = {role: round(seconds, 1) for role, seconds in used.items()}
        figures.cpu_floor_s = round(cpu_floor_s(figures), 2)
        figures.importer_cpu_s = round(used.get("importer", 0.0), 2)
        figures.importer_cpu_ms_per_1k_records = round(figures.importer_cpu_s * 1e6 / figures.objects, 1)
        figures.machine_busy_share = round((busy_after - busy_before) / max(1, total_after - total_before), 3)
        figures.importer_peak_rss_mb = [round(value, 1) for value in sampler.stop()]
        figures.fake_peak_rss_mb = round(_rss_mb(sandbox.pid or 0, "VmHWM"), 1)
        stats = sandbox_stats(stripe_url)
        (log_dir / "sandbox-stats.json").write_text(json.dumps(stats, indent=1))
        figures.import_s = round(elapsed, 2)
        figures.pages_phase_s = round(pages_phase, 2)
        figures.records_per_s = round(figures.objects / elapsed, 1)
        figures.pages_phase_records_per_s = round(figures.objects / pages_phase, 1)
        figures.ratio_to_bound = round(figures.records_per_s / figures.limit_bound_records_per_s, 3)
        figures.pages_phase_ratio_to_bound = round(
            figures.pages_phase_records_per_s / figures.limit_bound_records_per_s, 3
        )
        figures.requests = int(stats.get("requests_total", 0))
        figures.rate_limited_429 = int(stats.get("by_status", {}).get("429", 0))
        binding_endpoint(figures, stats, expected)
        figures.rate_limited_share = round(figures.rate_limited_429 / max(1, figures.requests), 4)
        figures.ratio_to_store_or_bound = round(
            figures.records_per_s / min(figures.store_bulk_insert_per_s, figures.limit_bound_records_per_s), 3
        )
        imported = {key: count.imported for key, count in completed.resources.items()}
        figures.counts_exact = imported == expected
        figures.importer_rss_mb_by_progress = _rss_by_progress(sampler.samples, progress_at)
        for process in importers:
            process.stop()

        if not args.skip_baseline:
            print("baseline: the stripe SDK's auto_paging_iter, one resource after the other ...", flush=True)
            reset_sandbox_stats(stripe_url)
            figures.baseline_records_per_s, _, figures.baseline_pages = run_baseline(
                stripe_url, live_key, args.baseline_pages
            )
            figures.baseline_records_per_s = round(figures.baseline_records_per_s, 1)
            figures.ratio_to_baseline = round(figures.records_per_s / figures.baseline_records_per_s, 1)
        for name in filter(None, args.peers.split(",")):
            try:
                figures.peers.append(
                    run_peer(name, stripe_url, live_key, args.peers_dir, log_dir, figures.records_per_s)
                )
            except Exception as exc:  # a peer that fails leaves our figures standing
                print(f"peer {name} failed: {exc!r}", flush=True)
    finally:
        for process in reversed(processes):
            process.stop()
        store.close()
        kafka.close()

    print_report(figures, imported)
    if args.report:
        from benchmark_report import write_report

        print(f"report: {write_report(figures, args.report)}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(asdict(figures), indent=2) + "\n")
    return 0 if figures.counts_exact else 1


def counts_and_probe(options: DatasetOptions) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """The history's objects by resource and the store probe's documents, built in a child process.

    A million-object history takes gigabytes while it is built; in a child they are given back
    when it ends instead of staying in this process (beside the fake's own copy) for the run.
    """
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_counts_and_probe, options).result()


def _counts_and_probe(options: DatasetOptions) -> tuple[dict[str, int], list[dict[str, Any]]]:
    dataset = generate_dataset(options)
    expected = {resource: len(objects) for resource, objects in dataset.stripe.items()}
    return expected, probe_documents(dataset.stripe["invoices"], 20_000)


def _rss_by_progress(samples: list[tuple[float, float]], progress_at: dict[float, float]) -> dict[str, float]:
    """Resident memory at about a quarter, half, three quarters of the import, and at its end."""
    out: dict[str, float] = {}
    if not samples:
        return out
    for mark in (0.25, 0.5, 0.75):
        reached = [at for done, at in sorted(progress_at.items()) if done >= mark]
        if reached:
            nearest = min(samples, key=lambda sample: abs(sample[0] - reached[0]))
            out[f"{int(mark * 100)}%"] = round(nearest[1], 1)
    out["end"] = round(samples[-1][1], 1)
    out["median"] = round(statistics.median(value for _, value in samples), 1)
    return out


def single_core_roles(figures: Figures) -> dict[str, float]:
    """The CPU of the run's processes that use one core at a time (Python's interpreter lock): the
    development store, the fake, and the importer when one process runs the import."""
    roles = ["store", "fake Stripe", *(["importer"] if figures.importers == 1 else [])]
    return {role: figures.cpu_s_by_role[role] for role in roles if role in figures.cpu_s_by_role}


def cpu_floor_s(figures: Figures) -> float:
    """The shortest the import could have taken on this machine with the CPU it cost: all the CPU
    the run's processes (importer, store, Kafka, fake) used during it over the cores, or the CPU of
    the busiest process that runs on one core at a time, whichever is longer."""
    return max(
        sum(figures.cpu_s_by_role.values()) / max(1, figures.cores),
        *single_core_roles(figures).values(),
        0.0,
    )


def cpu_floor_note(figures: Figures) -> str:
    single = single_core_roles(figures)
    busiest = max(single, key=lambda role: single[role], default=None)
    note = f"CPU of the run's processes during the import over {figures.cores} cores"
    if busiest is not None:
        note += f", or the {busiest}'s on its one core ({single[busiest]:.1f} s), whichever is longer"
    missing = [role for role in ("store", "kafka") if role not in figures.cpu_s_by_role]
    if missing:
        note += f" ({' and '.join(missing)} not counted: not started by this run)"
    return note


def print_report(figures: Figures, imported: dict[str, int]) -> None:
    f = figures
    rows = [
        ("objects", f"{f.objects}", f"{f.objects_by_resource}"),
        ("counts exact", f"{f.counts_exact}", f"{imported}"),
        ("importer processes", f"{f.importers}", f"page concurrency {f.page_concurrency} each"),
        ("end to end", f"{f.records_per_s:.1f} records/s", f"{f.import_s:.2f} s, trigger to ImportCompleted"),
        (
            "pages phase",
            f"{f.pages_phase_records_per_s:.1f} records/s",
            f"{f.pages_phase_s:.2f} s, fetch → normalise → store → publish of every page",
        ),
        (
            "limit bound",
            f"{f.limit_bound_records_per_s:.1f} records/s",
            f"{f.limit_bound_s:.2f} s, {f.requests_needed} pages",
        ),
        ("ratio to the bound", f"{f.ratio_to_bound:.3f}", f"pages phase {f.pages_phase_ratio_to_bound:.3f}"),
        (
            "requests, 429s",
            f"{f.requests}",
            f"{f.rate_limited_429} answered 429 ({f.rate_limited_share:.2%})",
        ),
        (
            f"{f.binding_endpoint} requests",
            f"{f.binding_requests}",
            f"{f.binding_pages_needed} pages needed; answered per second: {f.binding_per_second}",
        ),
        (
            "store bulk-insert rate",
            f"{f.store_bulk_insert_per_s:.1f} records/s",
            "same run, before the import",
        ),
        ("ratio to min(store, bound)", f"{f.ratio_to_store_or_bound:.3f}", ""),
        (
            "baseline (SDK, sequential)",
            f"{f.baseline_records_per_s:.1f} records/s",
            f"over {f.baseline_pages} pages",
        ),
        ("ratio to the baseline", f"{f.ratio_to_baseline:.1f} x", ""),
        (
            "importer CPU",
            f"{f.importer_cpu_s:.1f} s",
            f"{f.importer_cpu_ms_per_1k_records:.0f} ms per 1000 records;"
            f" machine busy {f.machine_busy_share:.0%}",
        ),
        ("CPU by process", f"{sum(f.cpu_s_by_role.values()):.1f} s", f"{f.cpu_s_by_role}"),
        *(
            (f"  {stage}", f"{ms:.0f} ms", "per 1000 records, importer CPU by stage (stack samples)")
            for stage, ms in f.importer_cpu_ms_per_1k_by_stage.items()
        ),
        *((("  CPU by stage", "-", f.cpu_stages_note),) if f.cpu_stages_note else ()),
        (
            "importer peak memory (RSS)",
            f"{f.importer_peak_rss_mb} MB",
            f"by progress {f.importer_rss_mb_by_progress}",
        ),
        (
            "fake Stripe",
            f"{f.fake_peak_rss_mb:.0f} MB",
            f"peak RSS holding the history; answered {f.fake_ready_s:.1f} s after its start",
        ),
    ]
    rows[4:4] = [
        (
            "connect → ImportCompleted",
            f"{f.import_s:.2f} s",
            f"limit bound {f.limit_bound_s:.2f} s ({f.import_s / max(f.limit_bound_s, 1e-9):.1f}× the bound)",
        ),
        ("CPU floor", f"{f.cpu_floor_s:.2f} s", cpu_floor_note(f)),
        *(
            (
                (
                    "  first import (cold)",
                    f"{f.cold_import_s:.2f} s",
                    "the untimed warm-up import on the just-started broker, store and importers",
                ),
            )
            if f.cold_import_s is not None
            else ()
        ),
    ]
    for peer in f.peers:
        rows.append(
            (
                f"peer {peer['name']}",
                f"{peer['records_per_s']:.1f} records/s",
                f"{peer['version']}: {peer['records']} records in {peer['wall_s']:.1f} s"
                f" (first after {peer['first_record_s']:.1f} s; {peer['records_per_s_after_start']:.1f}/s"
                f" from then), {peer['requests']} requests, CPU {peer['cpu_s']:.1f} s,"
                f" machine busy {peer['machine_busy_share']:.0%}"
                + (f"; {peer['error']}" if peer["error"] else ""),
            )
        )
        rows.append(
            (
                f"ratio to {peer['name']}",
                f"{peer['ratio_ours_to_peer']:.1f} x",
                f"{peer['ratio_ours_to_peer_after_start']:.1f} x against its rate after its first record",
            )
        )
    rows.append(
        (
            "taken",
            f.taken_at,
            f"load average {f.load_average} at the start, {f.load_average_end} at the end (2 cores)",
        )
    )
    rows.append(
        (
            "machine speed",
            f"{f.reference_loop_s:.2f} s",
            "sum(i * i for i in range(10**7)) on one core at the start: compare figures at like speeds",
        )
    )
    print("\nimporter benchmark: fake Stripe, live-mode limits (100 req/s, 25 per endpoint), 250 ms a page")
    for name, value, note in rows:
        print(f"  {name:<28}{value:>22}   {note}")
    sys.stdout.flush()


if __name__ == "__main__":
    os.environ.setdefault("DEVSTACK_CONTAINERS", "0")
    sys.exit(main())
