"""`python -m sandbox` serves both fakes, prints what to use, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from sandbox_kit import Http

from sandbox import SAMPLE_CHARGEBEE_KEY, SAMPLE_STRIPE_CLIENT_ID, SAMPLE_STRIPE_KEY


def test_cli_serves_both_fakes(tmp_path: Path) -> None:
    env_file = tmp_path / "sandbox.env"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox",
            "--stripe-port=0",
            "--chargebee-port=0",
            "--size=tiny",
            "--latency-ms=1",
            "--stripe-rate-limits",
            f"--env-file={env_file}",
            "--log-level=warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not env_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        env = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        stripe = Http(env["STRIPE_API_BASE"])
        assert stripe.get("/v1/customers", bearer=SAMPLE_STRIPE_KEY).status == 200
        template = env["CHARGEBEE_API_URL_TEMPLATE"]
        base, _, _ = template.partition("/sites/")
        chargebee = Http(base)
        path = template.format(site="acme-test").removeprefix(base)
        assert chargebee.get(f"{path}/customers", basic=SAMPLE_CHARGEBEE_KEY).status == 200
        assert env["STRIPE_CONNECT_BASE"] == env["STRIPE_API_BASE"]
        assert env["STRIPE_CLIENT_ID"] == SAMPLE_STRIPE_CLIENT_ID
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    assert SAMPLE_STRIPE_KEY in output
    assert SAMPLE_CHARGEBEE_KEY in output
    assert "CHARGEBEE_API_URL_TEMPLATE=" in output
    assert "sk_live_" not in output
