"""Benchmark of keeping an account fresh (SPEC "Keeping data fresh") on the real stack, figures printed.

    uv run python benchmarks/sync_benchmark.py            # 10,000 changes (several minutes)
    uv run python benchmarks/sync_benchmark.py --small    # 1,000 changes, shorter intake runs
    uv run python benchmarks/sync_benchmark.py --intake-only   # the webhook intake runs alone (~1 min)

One run starts Kafka and the store (``devstack``; ``KAFKA_BOOTSTRAP_SERVERS``/``MONGODB_URL`` reuse
running ones), the fake Stripe as its own process (live-mode limits, 250 ms a list page, the small
account: 2,000 customers, 6,601 objects), the connector and the importer as processes, and then:

1. **Full import** of the account (connect → ``ImportCompleted``): what a re-import costs, the
   figure sync is there to save.
2. **Polling only** (optional, ``--polling-changes``): the importer restarted with a short
   ``SYNC_INTERVAL_S`` and no webhook endpoint; a burst of changes at the fake, each timed from the
   moment it was made to the moment its record shows it.
3. **Webhook intake** at the connector: signed ``POST /v1/webhooks/stripe`` from a raw asyncio
   HTTP/1.1 client (keep-alive, requests built and signed beforehand), at each ``--intake-concurrency``
   for ``--intake-seconds``: requests/s, latency percentiles, and the client's own CPU (it runs on the
   same machine). Then, at each ``--intake-rates``, the same requests offered at that fixed rate
   (open loop, spread over ``--paced-connections`` connections): each request is timed from the
   moment it was due, not from when it went out, so a connector falling behind shows its backlog in
   the latencies (a closed-loop run at high concurrency only measures queueing at saturation).
   The events name an account that is not connected: the connector queues them all
   (it never reads the store for a Stripe event) and the importer drops them, so nothing is re-read.
4. **Change → store lag with webhooks**: the importer restarted with the default ``SYNC_INTERVAL_S``,
   the fake's webhook sender pointed at the connector, a burst of ``--changes`` customer updates
   made through the fake's control API (``touch`` with ``mark=name``: each change writes its number
   into the customer's name and the fake answers when it made each one). Each change is timed to the
   first ``billing.customers.v1`` record showing that change or a later one of the same customer (the
   importer writes the store, then publishes; the record's timestamp is the publish); at the end the
   store is checked to hold every customer's last change.

Every phase prints the machine's load beside its figures: cores, load average, and the share of the
machine busy during the phase (every process, not only ours); the machine is shared, so say so.
``--intake-only`` runs phase 3 alone: Kafka, the store and the connector, no fake Stripe, importer,
import or lag (the events' object is a customer of the generated account), to measure the connector's
intake by itself. ``--json FILE`` keeps the figures; ``--report DIR`` writes a markdown report.
Chargebee's webhooks are not measured.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import math
import os
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from contracts import topics
from devstack.infra import provide_kafka, provide_store
from devstack.net import free_port
from devstack.processes import ManagedProcess, ProcessSpec, http_answers, http_ready, python_module
from devstack.settings import mint_jwt, new_credentials_key
from devstack.topology import SYNC_EVENTS, SYNC_EVENTS_PARTITIONS
from import_kit import completion
from importer.sync_runtime import SYNC_EVENTS_GROUP
from importer_benchmark import cpu_by_role, machine_ticks, run_import
from pymongo import MongoClient
from sandbox.data import DatasetOptions, generate_dataset

from sandbox import config as sandbox_config

SMALL_CUSTOMERS = 2_000
LATENCY_MS = 250
WEBHOOK_SECRET = "whsec_" + "b3nch" * 6
#: A Stripe account nobody connected: its events are queued by the connector and dropped by the importer.
UNKNOWN_ACCOUNT = "acct_1BenchIntake00000"
ROLES = (
    ("secantusd", "store"),
    ("kafka.Kafka", "kafka"),
    ("-m sandbox", "fake Stripe"),
    ("-m connector", "connector"),
    ("-m importer", "importer"),
)
GOAL_INTAKE_PER_S = 1_000.0
GOAL_INTAKE_P99_MS = 50.0
GOAL_LAG_P99_S = 2.0


@dataclass
class Load:
    """The machine while a phase ran: every process on it, not only this run's."""

    cores: int = 0
    load_average_start: list[float] = field(default_factory=list)
    load_average_end: list[float] = field(default_factory=list)
    busy_share: float = 0.0
    cpu_s_by_role: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        roles = ", ".join(f"{role} {seconds:.1f}" for role, seconds in sorted(self.cpu_s_by_role.items()))
        return (
            f"{self.cores} cores, load average {self.load_average_start} → {self.load_average_end},"
            f" machine busy {self.busy_share:.0%}; CPU s: {roles}"
        )


class LoadMeter:
    def __init__(self) -> None:
        self.load = Load(cores=os.cpu_count() or 0, load_average_start=_loadavg())
        self._ticks = machine_ticks()
        self._roles = cpu_by_role(ROLES)

    def stop(self) -> Load:
        busy, total = machine_ticks()
        self.load.busy_share = round((busy - self._ticks[0]) / max(1, total - self._ticks[1]), 3)
        self.load.load_average_end = _loadavg()
        after = cpu_by_role(ROLES)
        self.load.cpu_s_by_role = {
            role: round(seconds - self._roles.get(role, 0.0), 1) for role, seconds in after.items()
        }
        return self.load


def _loadavg() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p95/p99 (nearest rank) and max; empty when there are no values."""
    if not values:
        return {}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered)) - 1))]

    return {"p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99), "max": ordered[-1]}


@dataclass
class IntakeRun:
    concurrency: int = 0
    #: Requests offered per second (open loop, latency from each request's due time); 0: closed loop.
    offered_per_s: float = 0.0
    requests: int = 0
    seconds: float = 0.0
    per_s: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    #: CPU of this benchmark process (the client) per request, and its share of one core.
    client_cpu_ms_per_request: float = 0.0
    client_core_share: float = 0.0
    connector_cpu_ms_per_request: float = 0.0
    load: Load = field(default_factory=Load)


@dataclass
class LagRun:
    path: str = ""
    changes: int = 0
    objects: int = 0
    #: Seconds the fake took to make the burst (first to last change).
    burst_s: float = 0.0
    reflected: int = 0
    lag_s: dict[str, float] = field(default_factory=dict)
    #: From the first change to the last change shown: the burst's whole catch-up.
    all_shown_after_s: float = 0.0
    #: Records published per second while catching up (each one an object re-read and applied).
    applied_per_s: float = 0.0
    records_seen: int = 0
    #: Webhooks: when the fake's sender had delivered every event (from the first change), and how many.
    webhooks_delivered: int = 0
    webhooks_delivered_after_s: float = 0.0
    #: Object re-reads the fake answered (``GET /v1/customers/{id}``) during the phase.
    retrieves: int = 0
    #: Pages of the customers' list sync read instead (a listing of the whole resource).
    list_pages: int = 0
    store_matches: bool = False
    sync_interval_s: float = 0.0
    sync_rate_share: float = 0.0
    load: Load = field(default_factory=Load)


@dataclass
class Figures:
    objects: int = 0
    full_import_s: float = 0.0
    full_import_records_per_s: float = 0.0
    full_import_load: Load = field(default_factory=Load)
    #: After the lag runs: ``POST …/imports`` of the same account (over its stored records, sync running).
    reimport_s: float = 0.0
    reimport_load: Load = field(default_factory=Load)
    intake: list[IntakeRun] = field(default_factory=list)
    #: After the intake runs: until the importer had handled (dropped) every event they queued.
    intake_drained_after_s: float = 0.0
    polling: LagRun | None = None
    webhooks: LagRun | None = None
    taken_at: str = ""
    command: str = ""
    #: ``--intake-only``: the connector alone, no importer to drain the intake's events.
    intake_only: bool = False


# --- processes -----------------------------------------------------------------------------------
def start_sandbox(log_dir: Path, customers: int, rate_limits: bool) -> tuple[ManagedProcess, str]:
    port = free_port()
    argv = [
        "--only",
        "stripe",
        "--customers",
        str(customers),
        "--invoices-per-subscription",
        "1",
        "--stripe-port",
        str(port),
        "--latency-ms",
        str(LATENCY_MS),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    if rate_limits:
        argv.append("--stripe-rate-limits")
    process = ManagedProcess(
        ProcessSpec(
            name="sandbox",
            argv=python_module("sandbox", *argv),
            probe=http_answers(f"http://127.0.0.1:{port}/_sandbox/stats"),
            ready_timeout_s=180,
        ),
        log_dir / "sandbox.log",
    )
    return process.start(), f"http://127.0.0.1:{port}"


def start_service(
    name: str, log_dir: Path, env: dict[str, str], port: int, log_suffix: str = ""
) -> ManagedProcess:
    process = ManagedProcess(
        ProcessSpec(
            name=name,
            argv=python_module(name),
            env={**env, "HTTP_PORT": str(port)},
            probe=http_ready(port),
            ready_timeout_s=90,
        ),
        log_dir / f"{name}{log_suffix}.log",
    )
    return process.start()


# --- webhook intake ------------------------------------------------------------------------------
def signed_requests(port: int, customer: dict[str, Any], count: int) -> list[bytes]:
    """``count`` distinct Stripe Connect events of ``UNKNOWN_ACCOUNT``, signed now, as raw HTTP/1.1."""
    out: list[bytes] = []
    now = int(time.time())
    for n in range(count):
        event = {
            "id": f"evt_1Bench{n:014d}",
            "object": "event",
            "account": UNKNOWN_ACCOUNT,
            "api_version": "2026-10-28.endive",
            "created": now,
            "data": {"object": customer, "previous_attributes": {"name": None}},
            "livemode": True,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": "customer.updated",
        }
        body = json.dumps(event, indent=2).encode()
        signature = hmac.new(WEBHOOK_SECRET.encode(), f"{now}.".encode() + body, hashlib.sha256).hexdigest()
        head = (
            f"POST /v1/webhooks/stripe HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/json; charset=utf-8\r\n"
            f"Stripe-Signature: t={now},v1={signature}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        out.append(head.encode() + body)
    return out


async def post_for(
    port: int, requests: list[bytes], concurrency: int, seconds: float
) -> tuple[list[float], Counter[str], float]:
    """Keep ``concurrency`` keep-alive connections busy for ``seconds``: latencies (s), statuses, wall."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    started = time.perf_counter()
    stop_at = loop.time() + seconds

    async def connection(offset: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        index = offset
        try:
            while loop.time() < stop_at:
                request = requests[index % len(requests)]
                index += concurrency
                sent = time.perf_counter()
                status = await _exchange(reader, writer, request)
                latencies.append(time.perf_counter() - sent)
                statuses[status] += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection(n) for n in range(concurrency)))
    return latencies, statuses, time.perf_counter() - started


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> str:
    """Send one request on a keep-alive connection and read its answer; its status."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return head[9:12].decode()


async def post_paced(
    port: int, requests: list[bytes], rate: float, seconds: float, connections: int
) -> tuple[list[float], Counter[str], float]:
    """Offer ``rate`` requests a second for ``seconds`` (open loop): request ``i`` is due at
    ``i / rate`` and goes out on connection ``i % connections`` as soon as that connection is free;
    its latency runs from when it was due, so time spent waiting behind a slow answer counts."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    total = max(1, round(rate * seconds))
    started = time.perf_counter()
    begin = loop.time()

    async def connection(offset: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for index in range(offset, total, connections):
                due = begin + index / rate
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                status = await _exchange(reader, writer, requests[index % len(requests)])
                latencies.append(loop.time() - due)
                statuses[status] += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection(n) for n in range(connections)))
    return latencies, statuses, time.perf_counter() - started


def run_intake(
    port: int,
    requests: list[bytes],
    concurrency: int,
    seconds: float,
    connector_pid: int,
    *,
    rate: float = 0.0,
) -> IntakeRun:
    """One intake run: ``concurrency`` connections kept busy, or (``rate``) that many requests a
    second offered over ``concurrency`` connections."""

    def post(duration: float) -> tuple[list[float], Counter[str], float]:
        if rate:
            return asyncio.run(post_paced(port, requests, rate, duration, concurrency))
        return asyncio.run(post_for(port, requests, concurrency, duration))

    post(1.0)  # warm-up: connections, caches
    meter = LoadMeter()
    connector_before = _cpu_seconds(connector_pid)
    client_before = time.process_time()
    latencies, statuses, wall = post(seconds)
    client_cpu = time.process_time() - client_before
    connector_cpu = _cpu_seconds(connector_pid) - connector_before
    load = meter.stop()
    count = len(latencies)
    # A fixed-rate run's requests were offered over ``seconds``: answered with bounded latency, the
    # connector kept up with that rate (the wall adds only the last answer's latency).
    window = seconds if rate else wall
    return IntakeRun(
        concurrency=concurrency,
        offered_per_s=rate,
        requests=count,
        seconds=round(wall, 2),
        per_s=round(count / window, 1),
        latency_ms={k: round(v * 1000, 2) for k, v in percentiles(latencies).items()},
        statuses=dict(statuses),
        client_cpu_ms_per_request=round(client_cpu * 1000 / max(1, count), 3),
        client_core_share=round(client_cpu / wall, 3),
        connector_cpu_ms_per_request=round(connector_cpu * 1000 / max(1, count), 3),
        load=load,
    )


def intake_runs(  # noqa: PLR0917
    port: int,
    requests: list[bytes],
    levels: list[int],
    rates: list[float],
    paced_connections: int,
    seconds: float,
    connector_pid: int,
) -> list[IntakeRun]:
    """The closed-loop runs (each level of connections), then the fixed-rate ones."""
    runs: list[IntakeRun] = []
    for level in levels:
        print(f"webhook intake: {level} connections for {seconds:.0f} s ...", flush=True)
        runs.append(run_intake(port, requests, level, seconds, connector_pid))
    for rate in rates:
        print(f"webhook intake: {rate:.0f}/s offered for {seconds:.0f} s ...", flush=True)
        runs.append(run_intake(port, requests, paced_connections, seconds, connector_pid, rate=rate))
    return runs


def _cpu_seconds(pid: int) -> float:
    from importer_benchmark import cpu_seconds

    return cpu_seconds(pid)


async def sync_backlog_drained(kafka: str, timeout_s: float) -> float:
    """Seconds until the importer has handled every message on its sync topic (committed = end)."""
    from aiokafka import TopicPartition

    started = time.monotonic()
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=SYNC_EVENTS_GROUP, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(SYNC_EVENTS, p) for p in range(SYNC_EVENTS_PARTITIONS)]
        while time.monotonic() - started < timeout_s:
            ends = await consumer.end_offsets(partitions)
            behind = 0
            for partition in partitions:
                committed = await consumer.committed(partition)
                behind += max(0, ends[partition] - (committed or 0))
            if behind == 0:
                break
            await asyncio.sleep(0.5)
    finally:
        await consumer.stop()
    return round(time.monotonic() - started, 1)


# --- change → store lag --------------------------------------------------------------------------
def lags_of(
    object_ids: list[str], changed_at: list[float], seen: list[tuple[float, str, int]]
) -> tuple[list[float], float]:
    """Each change's lag: from its making to the first record of its object showing it or a later
    change (``seen``: record time, object id, the change number it shows). Also the time of the
    last first showing (Unix s)."""
    pending: dict[str, list[int]] = defaultdict(list)
    for n, object_id in enumerate(object_ids):
        pending[object_id].append(n)
    cursor: dict[str, int] = defaultdict(int)
    lags: list[float] = []
    last = 0.0
    for at, object_id, shown in sorted(seen):
        numbers = pending.get(object_id)
        if not numbers:
            continue
        i = cursor[object_id]
        while i < len(numbers) and numbers[i] <= shown:
            lags.append(at - changed_at[numbers[i]])
            last = max(last, at)
            i += 1
        cursor[object_id] = i
    return lags, last


async def watch_burst(  # noqa: PLR0917
    kafka: str,
    stripe_url: str,
    account_id: str,
    changes: int,
    timeout_s: float,
    endpoint_id: str | None,
) -> tuple[LagRun, list[str], list[float], list[tuple[float, str, int]]]:
    """Make the burst at the fake and read ``billing.customers.v1`` until every change shows."""
    run = LagRun(changes=changes)
    consumer = AIOKafkaConsumer(topics.BILLING_CUSTOMERS, bootstrap_servers=kafka, auto_offset_reset="latest")
    await consumer.start()
    while not consumer.assignment():  # no group: every partition, once the topic's metadata is in
        await consumer.getmany(timeout_ms=100)
    for partition in consumer.assignment():
        await consumer.position(partition)  # from here on: what the burst brings
    prefix = f"{account_id}:stripe:".encode()
    seen: list[tuple[float, str, int]] = []
    async with httpx.AsyncClient(base_url=stripe_url, timeout=300) as http:
        answer = await http.post("/_sandbox/objects/customers/touch", json={"count": changes, "mark": "name"})
        answer.raise_for_status()
        burst = answer.json()
        object_ids: list[str] = burst["object_ids"]
        changed_at: list[float] = burst["changed_at"]
        run.objects = len(set(object_ids))
        run.burst_s = round(changed_at[-1] - changed_at[0], 3)
        last_change = {object_id: n for n, object_id in enumerate(object_ids)}
        shown: dict[str, int] = {}
        deadline = time.monotonic() + timeout_s
        next_stats = 0.0
        try:
            while time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                for messages in batches.values():
                    for message in messages:
                        if not message.key or not message.key.startswith(prefix) or message.value is None:
                            continue
                        record = json.loads(message.value)
                        name = record.get("name")
                        if not (isinstance(name, str) and name.isdigit()):
                            continue
                        object_id = str(record["object_id"])
                        seen.append((message.timestamp / 1000, object_id, int(name)))
                        shown[object_id] = max(shown.get(object_id, -1), int(name))
                if (
                    endpoint_id is not None
                    and time.monotonic() >= next_stats
                    and not run.webhooks_delivered_after_s
                ):
                    next_stats = time.monotonic() + 0.5
                    stats = (await http.get(f"/_sandbox/webhooks/{endpoint_id}")).json()["stats"]
                    run.webhooks_delivered = int(stats["delivered"])
                    if run.webhooks_delivered >= changes:
                        run.webhooks_delivered_after_s = round(time.time() - changed_at[0], 2)
                if all(shown.get(o, -1) >= n for o, n in last_change.items()):
                    break
        finally:
            await consumer.stop()
    return run, object_ids, changed_at, seen


def measure_lag(  # noqa: PLR0917
    kafka: str,
    stripe_url: str,
    mongodb_url: str,
    database: str,
    account_id: str,
    changes: int,
    timeout_s: float,
    endpoint_id: str | None,
) -> LagRun:
    meter = LoadMeter()
    before, pages_before = _retrieves(stripe_url), _list_pages(stripe_url)
    run, object_ids, changed_at, seen = asyncio.run(
        watch_burst(kafka, stripe_url, account_id, changes, timeout_s, endpoint_id)
    )
    run.load = meter.stop()
    run.retrieves = _retrieves(stripe_url) - before
    run.list_pages = _list_pages(stripe_url) - pages_before
    lags, last = lags_of(object_ids, changed_at, seen)
    run.reflected = len(lags)
    run.records_seen = len(seen)
    run.lag_s = {k: round(v, 3) for k, v in percentiles(lags).items()}
    if last:
        run.all_shown_after_s = round(last - changed_at[0], 2)
        first_seen = min(at for at, _, _ in seen)
        run.applied_per_s = round(len(seen) / max(1e-3, last - first_seen), 1)
    run.store_matches = store_shows(mongodb_url, database, account_id, object_ids)
    return run


async def reimport(
    kafka: str, connector_port: int, token: str, account_id: str, timeout_s: float = 600.0
) -> float:
    """Ask the connector for a fresh import of the account (``POST …/imports``) and wait for its
    ``ImportCompleted``: seconds from the request."""
    consumer = AIOKafkaConsumer(topics.IMPORTS, bootstrap_servers=kafka, auto_offset_reset="latest")
    await consumer.start()
    try:
        await asyncio.sleep(1.0)  # the consumer has its partitions before the request goes out
        started = time.perf_counter()
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.post(
                f"http://127.0.0.1:{connector_port}/v1/accounts/{account_id}/imports",
                headers={"Authorization": f"Bearer {token}"},
            )
        if answer.status_code != 202:
            raise RuntimeError(f"POST …/imports answered {answer.status_code}: {answer.text}")
        await completion(consumer, answer.json()["import_id"], started=started, timeout_s=timeout_s)
        return time.perf_counter() - started
    finally:
        await consumer.stop()


def store_shows(mongodb_url: str, database: str, account_id: str, object_ids: list[str]) -> bool:
    """Every changed customer's stored name is its last change's number."""
    last = {object_id: str(n) for n, object_id in enumerate(object_ids)}
    client: MongoClient[dict[str, Any]] = MongoClient(mongodb_url)
    try:
        stored = {
            doc["object_id"]: doc.get("name")
            for doc in client[database].customers.find(
                {"account_id": account_id, "object_id": {"$in": list(last)}}, {"object_id": 1, "name": 1}
            )
        }
    finally:
        client.close()
    return stored == last


def _list_pages(stripe_url: str) -> int:
    stats = httpx.get(f"{stripe_url}/_sandbox/stats", timeout=30).json()
    return int(stats.get("by_endpoint", {}).get("GET /v1/customers", 0))


def _retrieves(stripe_url: str) -> int:
    stats = httpx.get(f"{stripe_url}/_sandbox/stats", timeout=30).json()
    return sum(
        n for label, n in stats.get("by_endpoint", {}).items() if label.startswith("GET /v1/customers/")
    )


# --- the run -------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 - one run, told in order
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true", help="1,000 changes, 5 s an intake run, 50 polled")
    parser.add_argument("--changes", type=int, default=None, help="changes in the webhook burst (10,000)")
    parser.add_argument("--customers", type=int, default=SMALL_CUSTOMERS, help="customers of the account")
    parser.add_argument(
        "--polling-changes", type=int, default=None, help="changes of the polling-only run (0: skip)"
    )
    parser.add_argument("--polling-interval-s", type=float, default=5.0, help="SYNC_INTERVAL_S of that run")
    parser.add_argument("--intake-concurrency", default="8,32,64", help="client connections, one run each")
    parser.add_argument(
        "--intake-rates", default="1000,1500", help="requests/s offered at a fixed rate, one run each"
    )
    parser.add_argument(
        "--paced-connections", type=int, default=32, help="connections the fixed-rate runs spread over"
    )
    parser.add_argument("--intake-seconds", type=float, default=None, help="per intake run (15)")
    parser.add_argument(
        "--intake-only", action="store_true", help="only the webhook intake runs: no fake, importer or lag"
    )
    parser.add_argument(
        "--webhook-concurrency", type=int, default=16, help="the fake's webhook sender threads"
    )
    parser.add_argument(
        "--sync-rate-share", type=float, default=None, help="SYNC_RATE_SHARE (importer default 0.2)"
    )
    parser.add_argument("--no-rate-limits", action="store_true", help="the fake enforces no rate limits")
    parser.add_argument("--lag-timeout-s", type=float, default=900.0)
    parser.add_argument("--log-level", default="WARNING", help="LOG_LEVEL of the connector and importer")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--report", type=Path, default=None, help="write a markdown report into this folder")
    parser.add_argument("--log-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    changes = args.changes or (1_000 if args.small else 10_000)
    polling_changes = (
        args.polling_changes if args.polling_changes is not None else (50 if args.small else 200)
    )
    intake_seconds = args.intake_seconds or (5.0 if args.small else 15.0)
    levels = [int(level) for level in args.intake_concurrency.split(",") if level.strip()]
    rates = [float(rate) for rate in args.intake_rates.split(",") if rate.strip()]

    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="sync-benchmark-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"logs: {log_dir}", flush=True)
    figures = Figures(
        taken_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        command="uv run python benchmarks/sync_benchmark.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
    )
    options = DatasetOptions.for_size("small", chargebee=False, max_invoices_per_subscription=1)
    from dataclasses import replace

    dataset = generate_dataset(replace(options, customers=args.customers))
    expected = {resource: len(objects) for resource, objects in dataset.stripe.items()}
    figures.objects = sum(expected.values())
    first_customer: dict[str, Any] = dict(dataset.stripe["customers"][0])
    del dataset
    if args.intake_only:
        return intake_only(args, figures, log_dir, first_customer, levels, rates, intake_seconds)

    kafka = provide_kafka(log_dir)
    store = provide_store(log_dir)
    processes: list[ManagedProcess] = []
    try:
        database = f"syncbench_{uuid.uuid4().hex[:8]}"
        jwt_secret = uuid.uuid4().hex
        sandbox, stripe_url = start_sandbox(log_dir, args.customers, not args.no_rate_limits)
        processes.append(sandbox)
        credentials_key = new_credentials_key()
        common = {
            "KAFKA_BOOTSTRAP_SERVERS": kafka.address,
            "MONGODB_URL": store.address,
            "MONGODB_DATABASE": database,
            "API_JWT_SECRET": jwt_secret,
            "CREDENTIALS_KEYS": credentials_key,
            "STRIPE_API_BASE": stripe_url,
            "CHARGEBEE_API_URL_TEMPLATE": "http://127.0.0.1:9/{site}",
            "OTEL_SDK_DISABLED": "true",
            "LOG_LEVEL": args.log_level,
        }
        connector_port = free_port()
        connector = start_service(
            "connector", log_dir, {**common, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET}, connector_port
        )
        processes.append(connector)
        importer_env = dict(common)
        if args.sync_rate_share is not None:
            importer_env["SYNC_RATE_SHARE"] = str(args.sync_rate_share)
        importer_port = free_port()
        interval = args.polling_interval_s if polling_changes else 60.0
        importer = start_service(
            "importer", log_dir, {**importer_env, "SYNC_INTERVAL_S": str(interval)}, importer_port, "-1"
        )
        processes.append(importer)

        print("full import of the account ...", flush=True)
        account_id = f"syncbench_{uuid.uuid4().hex[:8]}"
        meter = LoadMeter()
        completed, elapsed, _, _, _ = asyncio.run(
            run_import(
                kafka.address,
                store.address,
                database,
                credentials_key,
                sandbox_config.live_stripe_key(),
                expected,
                account_id,
            )
        )
        figures.full_import_load = meter.stop()
        figures.full_import_s = round(elapsed, 2)
        figures.full_import_records_per_s = round(figures.objects / elapsed, 1)
        imported = {key: count.imported for key, count in completed.resources.items()}
        if imported != expected:
            print(f"the import's counts differ: {imported} != {expected}", flush=True)
        time.sleep(3.0)  # sync starts from ImportCompleted: its state exists before the first change

        share = args.sync_rate_share if args.sync_rate_share is not None else 0.2
        if polling_changes:
            print(f"polling only: {polling_changes} changes, SYNC_INTERVAL_S={interval} ...", flush=True)
            figures.polling = measure_lag(
                kafka.address, stripe_url, store.address, database, account_id, polling_changes,
                args.lag_timeout_s, None,
            )  # fmt: skip
            figures.polling.path = "polling only"
            figures.polling.sync_interval_s = interval
            figures.polling.sync_rate_share = share
            importer.stop()
            importer = start_service(
                "importer", log_dir, {**importer_env, "SYNC_INTERVAL_S": "60"}, importer_port, "-2"
            )
            processes.append(importer)

        customer = httpx.get(
            f"{stripe_url}/v1/customers",
            params={"limit": 1},
            headers={"Authorization": f"Bearer {sandbox_config.live_stripe_key()}"},
            timeout=30,
        ).json()["data"][0]
        requests = signed_requests(connector_port, customer, 2_000)
        figures.intake.extend(
            intake_runs(connector_port, requests, levels, rates, args.paced_connections, intake_seconds,
                        connector.pid or 0)
        )  # fmt: skip
        print("waiting for the importer to drop the intake's events ...", flush=True)
        figures.intake_drained_after_s = asyncio.run(sync_backlog_drained(kafka.address, args.lag_timeout_s))

        endpoint = httpx.post(
            f"{stripe_url}/_sandbox/webhooks",
            json={
                "url": f"http://127.0.0.1:{connector_port}/v1/webhooks/stripe",
                "secret": WEBHOOK_SECRET,
                "scopes": [sandbox_config.SAMPLE_STRIPE_ACCOUNT_ID],
                "concurrency": args.webhook_concurrency,
            },
            timeout=30,
        ).json()
        print(f"webhooks: a burst of {changes} changes ...", flush=True)
        figures.webhooks = measure_lag(
            kafka.address, stripe_url, store.address, database, account_id, changes,
            args.lag_timeout_s, str(endpoint["id"]),
        )  # fmt: skip
        figures.webhooks.path = "webhooks"
        figures.webhooks.sync_interval_s = 60.0
        figures.webhooks.sync_rate_share = share

        print("re-import of the account (POST …/imports) ...", flush=True)
        meter = LoadMeter()
        figures.reimport_s = round(
            asyncio.run(
                reimport(kafka.address, connector_port, mint_jwt(jwt_secret, account_id), account_id)
            ),
            2,
        )
        figures.reimport_load = meter.stop()
    finally:
        for process in reversed(processes):
            process.stop()
        store.close()
        kafka.close()

    text = report_text(figures)
    print("\n" + text, flush=True)
    if args.json:
        args.json.write_text(json.dumps(asdict(figures), indent=2) + "\n")
    if args.report:
        args.report.mkdir(parents=True, exist_ok=True)
        name = f"sync-{changes}-changes-{datetime.now(UTC).strftime('%Y%m%d%H%M')}.md"
        (args.report / name).write_text(report_markdown(figures, text))
        print(f"report: {args.report / name}", flush=True)
    complete = [run for run in (figures.polling, figures.webhooks) if run is not None]
    return 0 if all(run.reflected == run.changes and run.store_matches for run in complete) else 1


def intake_only(  # noqa: PLR0917
    args: argparse.Namespace,
    figures: Figures,
    log_dir: Path,
    customer: dict[str, Any],
    levels: list[int],
    rates: list[float],
    intake_seconds: float,
) -> int:
    """Phase 3 by itself: Kafka, the store and the connector; the events are of nobody's account."""
    figures.intake_only = True
    kafka = provide_kafka(log_dir)
    store = provide_store(log_dir)
    connector: ManagedProcess | None = None
    try:
        connector_port = free_port()
        connector = start_service(
            "connector",
            log_dir,
            {
                "KAFKA_BOOTSTRAP_SERVERS": kafka.address,
                "MONGODB_URL": store.address,
                "MONGODB_DATABASE": f"syncbench_{uuid.uuid4().hex[:8]}",
                "API_JWT_SECRET": uuid.uuid4().hex,
                "CREDENTIALS_KEYS": new_credentials_key(),
                "STRIPE_API_BASE": "http://127.0.0.1:9",
                "CHARGEBEE_API_URL_TEMPLATE": "http://127.0.0.1:9/{site}",
                "OTEL_SDK_DISABLED": "true",
                "LOG_LEVEL": args.log_level,
                "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            },
            connector_port,
        )
        requests = signed_requests(connector_port, customer, 2_000)
        figures.intake.extend(
            intake_runs(connector_port, requests, levels, rates, args.paced_connections, intake_seconds,
                        connector.pid or 0)
        )  # fmt: skip
    finally:
        if connector is not None:
            connector.stop()
        store.close()
        kafka.close()
    text = report_text(figures)
    print("\n" + text, flush=True)
    if args.json:
        args.json.write_text(json.dumps(asdict(figures), indent=2) + "\n")
    if args.report:
        args.report.mkdir(parents=True, exist_ok=True)
        name = f"sync-intake-{datetime.now(UTC).strftime('%Y%m%d%H%M')}.md"
        (args.report / name).write_text(report_markdown(figures, text))
        print(f"report: {args.report / name}", flush=True)
    return 0 if all(set(run.statuses) == {"200"} for run in figures.intake) else 1


# --- output --------------------------------------------------------------------------------------
def _ratio(actual: float, goal: float, lower_is_better: bool) -> str:
    if not actual or not goal:
        return "—"
    return f"{(goal / actual if lower_is_better else actual / goal):.2f}"


def rows(figures: Figures) -> list[tuple[str, str, str, str, str]]:
    """(figure, goal, actual, ratio — above 1 meets the goal, note) rows."""
    out: list[tuple[str, str, str, str, str]] = []
    for intake in figures.intake:
        p99 = intake.latency_ms.get("p99", 0.0)
        # The goal is a latency at a rate: a fixed-rate run at or above it says whether it is met. A
        # closed-loop run (N connections kept busy) measures the most the connector answers; its
        # latency is queueing at that saturation (N / rate), not the goal's.
        paced = intake.offered_per_s >= GOAL_INTAKE_PER_S
        out.append(
            (
                f"webhook intake, {intake.offered_per_s:.0f}/s offered over {intake.concurrency} connections"
                if intake.offered_per_s
                else f"webhook intake, {intake.concurrency} connections kept busy",
                f"≥ {GOAL_INTAKE_PER_S:.0f}/s, p99 < {GOAL_INTAKE_P99_MS:.0f} ms"
                if paced
                else "— (capacity)",
                f"{intake.per_s:.0f}/s, p99 {p99:.1f} ms",
                f"{_ratio(intake.per_s, GOAL_INTAKE_PER_S, False)} / {_ratio(p99, GOAL_INTAKE_P99_MS, True)}"
                if paced
                else "—",
                f"p50 {intake.latency_ms.get('p50', 0):.1f}, p95 {intake.latency_ms.get('p95', 0):.1f},"
                f" max {intake.latency_ms.get('max', 0):.1f} ms;"
                f" {intake.requests} requests {intake.statuses};"
                f" client {intake.client_cpu_ms_per_request:.2f} ms CPU/request"
                f" ({intake.client_core_share:.0%} of a core),"
                f" connector {intake.connector_cpu_ms_per_request:.2f} ms CPU/request."
                f" Load: {intake.load.line()}",
            )
        )
    if figures.intake and not figures.intake_only:
        out.append(
            (
                "importer: the intake's events dropped",
                "—",
                f"{figures.intake_drained_after_s:.1f} s later",
                "—",
                f"{sum(i.requests for i in figures.intake)} events of an account nobody connected, queued by"
                " the intake runs, all handled (dropped) by the importer this long after the last run ended",
            )
        )
    for run in (figures.polling, figures.webhooks):
        if run is None:
            continue
        lag = run.lag_s
        goal = (
            f"p99 < {GOAL_LAG_P99_S:.0f} s"
            if run.path == "webhooks"
            else f"< SYNC_INTERVAL_S + 5 s = {run.sync_interval_s + 5:.0f} s"
        )
        goal_s = GOAL_LAG_P99_S if run.path == "webhooks" else run.sync_interval_s + 5
        out.append(
            (
                f"change → store, {run.path}, {run.changes} changes",
                goal,
                f"p99 {lag.get('p99', 0):.2f} s",
                _ratio(lag.get("p99", 0.0), goal_s, True),
                f"p50 {lag.get('p50', 0):.2f}, p95 {lag.get('p95', 0):.2f}, max {lag.get('max', 0):.2f} s;"
                f" {run.reflected}/{run.changes} shown over {run.objects} customers,"
                f" store equal: {run.store_matches}; burst made in {run.burst_s:.2f} s;"
                f" all shown {run.all_shown_after_s:.1f} s after the first change;"
                f" {run.applied_per_s:.1f} records applied/s; {run.retrieves} re-reads"
                f" and {run.list_pages} customer list pages at the fake"
                + (
                    f"; {run.webhooks_delivered} webhooks delivered"
                    + (
                        f" within {run.webhooks_delivered_after_s:.1f} s"
                        if run.webhooks_delivered_after_s
                        else ""
                    )
                    if run.path == "webhooks"
                    else ""
                )
                + f"; SYNC_INTERVAL_S {run.sync_interval_s:g}, SYNC_RATE_SHARE {run.sync_rate_share:g}."
                f" Load: {run.load.line()}",
            )
        )
    if not figures.full_import_s:
        return out
    out.append(
        (
            f"full import of the same account ({figures.objects} objects)",
            "—",
            f"{figures.full_import_s:.2f} s",
            "—",
            f"{figures.full_import_records_per_s:.0f} records/s, connect → ImportCompleted."
            f" Load: {figures.full_import_load.line()}",
        )
    )
    if figures.reimport_s:
        out.append(
            (
                f"full re-import of the same account ({figures.objects} objects)",
                "—",
                f"{figures.reimport_s:.2f} s",
                "—",
                f"{figures.objects / figures.reimport_s:.0f} objects/s, POST …/imports → ImportCompleted,"
                f" over the stored records, sync running. Load: {figures.reimport_load.line()}",
            )
        )
    return out


def report_text(figures: Figures) -> str:
    lines = [
        "sync benchmark: the connector's webhook intake alone (Kafka, the store, the connector)"
        if figures.intake_only
        else "sync benchmark: fake Stripe (live-mode limits, 250 ms a list page),"
        " connector and importer as processes",
        f"taken {figures.taken_at}; {figures.command}",
    ]
    for name, goal, actual, ratio, note in rows(figures):
        lines.append(f"  {name:<44} goal {goal:<30} actual {actual:<24} ratio {ratio}")
        lines.append(f"      {note}")
    return "\n".join(lines)


def report_markdown(figures: Figures, text: str) -> str:
    head = [
        f"# Sync benchmark ({figures.taken_at})",
        "",
        f"`{figures.command}`. Ratios above 1 meet the goal (goal/actual for latencies, actual/goal for"
        " rates). The machine is shared: each row's load line says how busy it was while that figure was"
        " taken.",
        "",
        "| figure | goal | actual | ratio | note |",
        "| --- | --- | --- | --- | --- |",
    ]
    body = [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows(figures)]
    return "\n".join([*head, *body, "", "```", text, "```", ""])


if __name__ == "__main__":
    os.environ.setdefault("DEVSTACK_CONTAINERS", "0")
    sys.exit(main())
