"""Chargebee pacing: imports of a site that allows fewer, or more, requests a minute than configured.

    uv run python benchmarks/chargebee_pacing_benchmark.py              # both cases (about 15 minutes)
    uv run python benchmarks/chargebee_pacing_benchmark.py --case below # one of them

Each case starts the fake Chargebee as its own process (``--only chargebee``, its site ``acme-test``
limited to the case's requests a minute, counted over the past 60 seconds as Chargebee does, with
``Retry-After``; every list page answered after ``--latency-ms``), Kafka and the store (``devstack``;
``KAFKA_BOOTSTRAP_SERVERS``/``MONGODB_URL`` reuse running ones) and ``python -m importer``
(``--importers`` processes sharing the work) with ``CHARGEBEE_REQUESTS_PER_MINUTE`` at the
configured figure, then runs two imports of the site, each
for a new account: the first on a site the importer knows nothing about (it learns the limit), the
second reading what the first learned (``learned_rate_limits``).

For each import it prints the requests the site accepted and refused (the fake's own count), the
per-minute bound (accepted requests / the site's real limit a minute: no importer can do better
without the site's burst), the import's duration from its trigger to ``ImportCompleted``, their
ratio, the refused share, the learned limit, and the machine's load average and busy share. The
sizes are picked so that each import's bound is about three minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from contracts.events import Mode, Processor, ProcessorConnected
from devstack.infra import provide_kafka, provide_store
from devstack.net import free_port
from devstack.processes import ManagedProcess, ProcessSpec, http_answers, http_ready, python_module
from devstack.settings import new_credentials_key
from import_kit import connected, run_to_completion
from importer_benchmark import machine_ticks
from pymongo import MongoClient
from sandbox.runner import chargebee_url_template

from sandbox import config as sandbox_config

SITE = sandbox_config.SAMPLE_CHARGEBEE_SITE
KEY = sandbox_config.SAMPLE_CHARGEBEE_KEY
CONFIGURED_PER_MIN = 150
#: The site's real limit a minute, and customers of the fake's dataset (about 8 objects and 0.085
#: list pages each) for a bound of about three minutes.
CASES = {"below": (100, 3_400), "above": (300, 10_000)}
#: More chains than the default 3: the limit, not the chains' cycle, must bind at 300 a minute.
IMPORT_CHAINS = 8
CHAINS_PER_RESOURCE = 4


@dataclass
class ImportFigures:
    run: str
    import_s: float = 0.0
    accepted: int = 0
    refused: int = 0
    bound_s: float = 0.0
    ratio_to_bound: float = 0.0
    refused_share: float = 0.0
    learned_per_min_before: float | None = None
    learned_per_min_after: float | None = None
    records: int = 0
    load_average_before: list[float] = field(default_factory=list)
    load_average_after: list[float] = field(default_factory=list)
    machine_busy_share: float = 0.0


@dataclass
class CaseFigures:
    case: str
    site_per_min: int
    configured_per_min: int
    customers: int
    latency_ms: float
    importers: int = 1
    imports: list[ImportFigures] = field(default_factory=list)


def connect(db: Any, credentials_key: str) -> ProcessorConnected:
    """A connected Chargebee connection of a new account, as the connector leaves it; its import's
    trigger."""
    return connected(
        db,
        credentials_key,
        account_id=f"bench_{uuid.uuid4().hex[:10]}",
        processor=Processor.CHARGEBEE,
        mode=Mode.TEST,
        processor_account_id=SITE,
        api_key=KEY,
        site=SITE,
        product_catalog="2.0",
    )


def fake_stats(url: str) -> dict[str, Any]:
    return dict(httpx.get(f"{url}/_sandbox/stats", timeout=10).json())


def learned(db: Any) -> float | None:
    document = db.learned_rate_limits.find_one({"_id": f"chargebee:{SITE}"})
    return None if document is None else round(float(document["per_min"]), 1)


def run_case(case: str, args: argparse.Namespace, log_dir: Path) -> CaseFigures:
    site_per_min, customers = CASES[case]
    customers = args.customers or customers
    figures = CaseFigures(case, site_per_min, CONFIGURED_PER_MIN, customers, args.latency_ms, args.importers)
    kafka = provide_kafka(log_dir)
    store = provide_store(log_dir)
    processes: list[ManagedProcess] = []
    try:
        database = f"bench_{uuid.uuid4().hex[:8]}"
        port = free_port()
        fake = ManagedProcess(
            ProcessSpec(
                name=f"sandbox-{case}",
                argv=python_module(
                    "sandbox",
                    "--only",
                    "chargebee",
                    "--chargebee-port",
                    str(port),
                    "--customers",
                    str(customers),
                    "--chargebee-rate-limit-per-min",
                    str(site_per_min),
                    "--latency-ms",
                    str(args.latency_ms),
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ),
                probe=http_answers(f"http://127.0.0.1:{port}/_sandbox/stats"),
                ready_timeout_s=180,
            ),
            log_dir / f"sandbox-{case}.log",
        )
        processes.append(fake.start())
        url = f"http://127.0.0.1:{port}"
        credentials_key = new_credentials_key()
        for index in range(args.importers):
            importer_port = free_port()
            env = {
                "KAFKA_BOOTSTRAP_SERVERS": kafka.address,
                "MONGODB_URL": store.address,
                "MONGODB_DATABASE": database,
                "HTTP_PORT": str(importer_port),
                "API_JWT_SECRET": uuid.uuid4().hex,
                "CREDENTIALS_KEYS": credentials_key,
                "STRIPE_API_BASE": "http://127.0.0.1:9",
                "CHARGEBEE_API_URL_TEMPLATE": chargebee_url_template(url),
                "CHARGEBEE_REQUESTS_PER_MINUTE": str(CONFIGURED_PER_MIN),
                "CHARGEBEE_IMPORT_CHAINS": str(IMPORT_CHAINS),
                "CHARGEBEE_CHAINS_PER_RESOURCE": str(CHAINS_PER_RESOURCE),
                "OTEL_SDK_DISABLED": "true",
                "LOG_LEVEL": "INFO",
            }
            importer = ManagedProcess(
                ProcessSpec(
                    name=f"importer-{case}-{index}",
                    argv=python_module("importer"),
                    env=env,
                    probe=http_ready(importer_port),
                    ready_timeout_s=60,
                ),
                log_dir / f"importer-{case}-{index}.log",
            )
            processes.append(importer.start())
        client: MongoClient[dict[str, Any]] = MongoClient(store.address, tz_aware=True)
        db = client[database]
        for run in args.runs.split(","):
            print(
                f"{case}: {run} import (site {site_per_min}/min, configured {CONFIGURED_PER_MIN}) ...",
                flush=True,
            )
            trigger = connect(db, credentials_key)
            result = ImportFigures(run=run, learned_per_min_before=learned(db))
            before = fake_stats(url)
            result.load_average_before = [round(value, 1) for value in os.getloadavg()]
            busy_before, total_before = machine_ticks()
            done = asyncio.run(run_to_completion(kafka.address, trigger))
            completed, elapsed = done.outcome, done.elapsed_s
            busy_after, total_after = machine_ticks()
            result.load_average_after = [round(value, 1) for value in os.getloadavg()]
            after = fake_stats(url)
            requests = int(after["requests_total"]) - int(before["requests_total"])
            result.refused = int(after["rate_limited"]) - int(before["rate_limited"])
            result.accepted = requests - result.refused
            result.import_s = round(elapsed, 1)
            result.bound_s = round(result.accepted / site_per_min * 60.0, 1)
            result.ratio_to_bound = round(elapsed / result.bound_s, 3)
            result.refused_share = round(result.refused / max(1, requests), 4)
            result.learned_per_min_after = learned(db)
            result.records = sum(count.imported for count in completed.resources.values())
            result.machine_busy_share = round(
                (busy_after - busy_before) / max(1, total_after - total_before), 3
            )
            figures.imports.append(result)
            print(f"  {json.dumps(asdict(result))}", flush=True)
        client.close()
    finally:
        for process in reversed(processes):
            process.stop()
        store.close()
        kafka.close()
    return figures


def print_report(cases: list[CaseFigures]) -> None:
    print()
    print(
        "case (importers) site/min conf/min run    accepted refused  refused%  bound_s  import_s  ratio  "
        "learned(before->after)  load(before->after)  busy"
    )
    for case in cases:
        for run in case.imports:
            print(
                f"{case.case + f' ({case.importers})':<16} {case.site_per_min:>8} "
                f"{case.configured_per_min:>8} {run.run:<6} "
                f"{run.accepted:>8} {run.refused:>7} {run.refused_share * 100:>8.2f} {run.bound_s:>8.1f} "
                f"{run.import_s:>9.1f} {run.ratio_to_bound:>6.3f}  "
                f"{run.learned_per_min_before!s:>8} -> {run.learned_per_min_after!s:<10} "
                f"{run.load_average_before[0]:>5} -> {run.load_average_after[0]:<5}        "
                f"{run.machine_busy_share:.2f}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", choices=(*CASES, "both"), default="both")
    parser.add_argument("--runs", default="first,again", help="imports per case (comma-separated names)")
    parser.add_argument("--customers", type=int, default=None, help="overrides the case's dataset size")
    parser.add_argument("--importers", type=int, default=1, help="importer processes sharing the imports")
    parser.add_argument(
        "--latency-ms", type=float, default=150.0, help="the fake's answer time per list page"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--log-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="chargebee-pacing-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"logs: {log_dir}", flush=True)
    cases = [case for case in CASES if args.case in {case, "both"}]
    results = [run_case(case, args, log_dir) for case in cases]
    print_report(results)
    if args.json:
        args.json.write_text(json.dumps([asdict(result) for result in results], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
