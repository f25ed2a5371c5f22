"""The sync benchmark's pieces work end to end on a tiny run (its figures are not checked, only that
every change it makes arrives): benchmarks/sync_benchmark.py on the session's broker and store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_tiny_sync_benchmark_sees_every_change_arrive(
    kafka_bootstrap: str, mongodb_url: str, tmp_path: Path
) -> None:
    figures_file = tmp_path / "figures.json"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "MONGODB_URL": mongodb_url,
        "DEVSTACK_CONTAINERS": "0",
    }
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "sync_benchmark.py"),
            "--customers",
            "30",
            "--changes",
            "20",
            "--polling-changes",
            "5",
            "--intake-concurrency",
            "2",
            "--intake-rates",
            "",
            "--intake-seconds",
            "1",
            "--lag-timeout-s",
            "120",
            "--json",
            str(figures_file),
            "--log-dir",
            str(tmp_path / "logs"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    figures = json.loads(figures_file.read_text())
    [intake] = figures["intake"]
    assert intake["requests"] > 0
    assert set(intake["statuses"]) == {"200"}
    for path, changes in (("polling", 5), ("webhooks", 20)):
        lag = figures[path]
        assert (lag["changes"], lag["reflected"], lag["store_matches"]) == (changes, changes, True)
    assert figures["webhooks"]["webhooks_delivered"] == 20
    assert figures["full_import_s"] > 0
    assert figures["reimport_s"] > 0  # POST …/imports of the same account, to its ImportCompleted
    assert "full re-import of the same account" in run.stdout
    assert "webhook intake, 2 connections kept busy" in run.stdout


def test_the_intake_only_run_measures_the_connector_alone(
    kafka_bootstrap: str, mongodb_url: str, tmp_path: Path
) -> None:
    figures_file = tmp_path / "figures.json"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "MONGODB_URL": mongodb_url,
        "DEVSTACK_CONTAINERS": "0",
    }
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "sync_benchmark.py"),
            "--intake-only",
            "--customers",
            "30",
            "--intake-concurrency",
            "2",
            "--intake-rates",
            "50",
            "--paced-connections",
            "2",
            "--intake-seconds",
            "1",
            "--json",
            str(figures_file),
            "--log-dir",
            str(tmp_path / "logs"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    figures = json.loads(figures_file.read_text())
    closed, paced = figures["intake"]
    assert closed["requests"] > 0
    assert set(closed["statuses"]) == {"200"}
    # The fixed-rate run offers 50 requests a second for 1 s: exactly 50, each answered.
    assert (paced["offered_per_s"], paced["concurrency"], paced["requests"]) == (50.0, 2, 50)
    assert paced["statuses"] == {"200": 50}
    assert "webhook intake, 50/s offered over 2 connections" in run.stdout
    assert (figures["intake_only"], figures["webhooks"], figures["full_import_s"]) == (True, None, 0.0)
