"""`python -m sandbox` / `sandbox-processors`: serve the fake Stripe and fake Chargebee."""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from starlette.types import ASGIApp

from sandbox import config as cfg
from sandbox.combined import CombinedApp
from sandbox.data import CUSTOMERS_BY_SIZE, DatasetOptions, generate_dataset
from sandbox.fake_chargebee import create_chargebee_app
from sandbox.fake_chargebee.state import default_chargebee_sites
from sandbox.fake_stripe import create_stripe_app
from sandbox.runner import chargebee_url_template, service_env
from sandbox.server import bind_socket, serve_together, url_of

DEFAULT_STRIPE_PORT = 12111
DEFAULT_CHARGEBEE_PORT = 12112


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sandbox-processors",
        description="Serve a fake Stripe and a fake Chargebee with a deterministic sample billing history.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--stripe-port", type=int, default=DEFAULT_STRIPE_PORT, help="0 picks a free port")
    p.add_argument("--chargebee-port", type=int, default=DEFAULT_CHARGEBEE_PORT, help="0 picks a free port")
    p.add_argument(
        "--port",
        type=int,
        help="serve both fakes on this one port (Chargebee under /sites/, its control API under "
        "/_sandbox/chargebee/); overrides --stripe-port and --chargebee-port",
    )
    p.add_argument("--only", choices=("stripe", "chargebee"), help="serve one fake only")
    data = p.add_argument_group("sample data")
    data.add_argument("--size", choices=sorted(CUSTOMERS_BY_SIZE), default="small")
    data.add_argument("--customers", type=int, help="overrides --size")
    data.add_argument("--seed", type=int, default=42)
    data.add_argument(
        "--invoices-per-subscription",
        type=int,
        default=DatasetOptions.max_invoices_per_subscription,
        help="latest billing periods invoiced per subscription (fewer: a history of annual plans)",
    )
    data.add_argument(
        "--shared-created-ratio",
        type=float,
        default=0.0,
        help="share of customers created at a few identical instants (slice borders)",
    )
    data.add_argument(
        "--chargebee-catalog", choices=("1.0", "2.0"), default="2.0", help="catalog of acme-test"
    )
    behaviour = p.add_argument_group("behaviour")
    behaviour.add_argument("--latency-ms", type=float, default=0.0, help="added to every list page")
    behaviour.add_argument(
        "--stripe-rate-limits",
        action="store_true",
        help="enforce Stripe-like rate limits (numbers below)",
    )
    behaviour.add_argument("--stripe-live-rps", type=float, default=cfg.STRIPE_LIVE_GLOBAL_RATE_PER_S)
    behaviour.add_argument(
        "--stripe-live-endpoint-rps", type=float, default=cfg.STRIPE_LIVE_ENDPOINT_RATE_PER_S
    )
    behaviour.add_argument("--stripe-test-rps", type=float, default=cfg.STRIPE_TEST_GLOBAL_RATE_PER_S)
    behaviour.add_argument(
        "--stripe-test-endpoint-rps", type=float, default=cfg.STRIPE_TEST_ENDPOINT_RATE_PER_S
    )
    behaviour.add_argument(
        "--stripe-retry-after-s", type=int, default=1, help="Retry-After on Stripe 429s; -1 leaves it out"
    )
    behaviour.add_argument(
        "--chargebee-rate-limit-per-min",
        type=int,
        default=cfg.CHARGEBEE_DEFAULT_RATE_LIMIT_PER_MIN,
        help="per site; 0 disables",
    )
    p.add_argument("--env-file", type=Path, help="also write the service environment values to this file")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    p.add_argument("--no-access-log", action="store_true")
    return p


def _stripe_limits(args: argparse.Namespace) -> cfg.StripeRateLimits:
    retry_after = None if args.stripe_retry_after_s < 0 else args.stripe_retry_after_s
    if not args.stripe_rate_limits:
        return cfg.StripeRateLimits(retry_after_s=retry_after)
    return cfg.StripeRateLimits(
        live=cfg.RateLimit(args.stripe_live_rps, args.stripe_live_endpoint_rps),
        test=cfg.RateLimit(args.stripe_test_rps, args.stripe_test_endpoint_rps),
        retry_after_s=retry_after,
    )


def _banner(stripe_url: str | None, chargebee_url: str | None, counts: str) -> str:
    lines = ["Sandbox processors are running (test data only; nothing here is a real account).", ""]
    if stripe_url:
        lines += [
            f"Fake Stripe      {stripe_url}   (REST API and Connect OAuth)",
            f"  account {cfg.SAMPLE_STRIPE_ACCOUNT_ID} ({cfg.SAMPLE_STRIPE_ACCOUNT_NAME})",
            f"    secret key             {cfg.SAMPLE_STRIPE_KEY}",
            f"    restricted key         {cfg.SAMPLE_STRIPE_RESTRICTED_KEY}",
            f"    key without invoices   {cfg.SAMPLE_STRIPE_LIMITED_KEY}",
            f"    key without /v1/account {cfg.SAMPLE_STRIPE_NO_ACCOUNT_KEY}",
            f"  account {cfg.SAMPLE_STRIPE_OTHER_ACCOUNT_ID} ({cfg.SAMPLE_STRIPE_OTHER_ACCOUNT_NAME})",
            f"    secret key             {cfg.SAMPLE_STRIPE_OTHER_ACCOUNT_KEY}",
            "  Connect platform",
            f"    client id              {cfg.SAMPLE_STRIPE_CLIENT_ID}",
            f"    platform secret key    {cfg.SAMPLE_STRIPE_PLATFORM_SECRET_KEY}",
            "",
        ]
    if chargebee_url:
        lines.append(f"Fake Chargebee   {chargebee_url_template(chargebee_url)}")
        keys = {
            cfg.SAMPLE_CHARGEBEE_SITE: cfg.SAMPLE_CHARGEBEE_KEY,
            cfg.SAMPLE_CHARGEBEE_PC1_SITE: cfg.SAMPLE_CHARGEBEE_PC1_KEY,
            cfg.SAMPLE_CHARGEBEE_BLOCKED_SITE: cfg.SAMPLE_CHARGEBEE_BLOCKED_KEY,
        }
        for site, key in keys.items():
            lines.append(f"  site {site:<18} api key {key}")
        lines += [f"  (key {cfg.SAMPLE_CHARGEBEE_RESTRICTED_KEY} of acme-test may not list invoices)", ""]
    lines.append(f"Sample data: {counts}")
    lines += ["", "Environment for the services:"]
    lines += [f"  {name}={value}" for name, value in service_env(stripe_url, chargebee_url).items()]
    lines.append("")
    if stripe_url:
        lines.append(f"Test control (Stripe):    {stripe_url}/_sandbox/  (docs: /_sandbox/docs)")
    if chargebee_url:
        admin = "/_sandbox/chargebee/" if chargebee_url == stripe_url else "/_sandbox/"
        lines.append(f"Test control (Chargebee): {chargebee_url}{admin}")
    lines.append(
        "  events: /v1/events, /api/v2/events; change data: /_sandbox/objects/…; webhooks: /_sandbox/webhooks"
    )
    lines.append("Ctrl-C stops.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    customers = args.customers if args.customers is not None else CUSTOMERS_BY_SIZE[args.size]
    dataset = generate_dataset(
        DatasetOptions(
            seed=args.seed,
            customers=customers,
            max_invoices_per_subscription=args.invoices_per_subscription,
            shared_created_ratio=args.shared_created_ratio,
            chargebee_catalog_version=args.chargebee_catalog,
            stripe=args.only != "chargebee",
            chargebee=args.only != "stripe",
        )
    )
    latency_s = args.latency_ms / 1000
    stripe_app = chargebee_app = None
    if args.only != "chargebee":
        stripe_app = create_stripe_app(dataset, rate_limits=_stripe_limits(args), latency_s=latency_s)
    if args.only != "stripe":
        per_min = args.chargebee_rate_limit_per_min or None
        sites = [
            cfg.ChargebeeSite(s.name, s.keys, s.catalog_version, s.blocked, per_min, s.data)
            for s in default_chargebee_sites(dataset)
        ]
        chargebee_app = create_chargebee_app(sites=sites, latency_s=latency_s)
    bound: list[tuple[ASGIApp, socket.socket]] = []
    if args.port is not None:
        both: ASGIApp | None = (
            CombinedApp(stripe_app, chargebee_app) if stripe_app and chargebee_app else None
        )
        single = both or stripe_app or chargebee_app
        assert single is not None
        sock = bind_socket(args.host, args.port)
        bound.append((single, sock))
        stripe_url = url_of(sock) if stripe_app else None
        chargebee_url = url_of(sock) if chargebee_app else None
    else:
        stripe_url = chargebee_url = None
        if stripe_app is not None:
            bound.append((stripe_app, bind_socket(args.host, args.stripe_port)))
            stripe_url = url_of(bound[-1][1])
        if chargebee_app is not None:
            bound.append((chargebee_app, bind_socket(args.host, args.chargebee_port)))
            chargebee_url = url_of(bound[-1][1])
    counts = ", ".join(
        f"{processor} " + " ".join(f"{name}={n}" for name, n in resources.items())
        for processor, resources in dataset.counts().items()
        if resources
    )
    print(_banner(stripe_url, chargebee_url, counts), flush=True)
    if args.env_file:
        env = service_env(stripe_url, chargebee_url)
        args.env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    asyncio.run(serve_together(bound, log_level=args.log_level, access_log=not args.no_access_log))
    return 0


if __name__ == "__main__":
    sys.exit(main())
