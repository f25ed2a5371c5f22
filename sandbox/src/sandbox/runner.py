"""Both fakes together: start them in background threads and describe how services reach them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from sandbox import config as cfg
from sandbox.data import Dataset, generate_dataset
from sandbox.fake_chargebee import create_chargebee_app, default_chargebee_sites
from sandbox.fake_stripe import create_stripe_app
from sandbox.server import BackgroundServer


def chargebee_url_template(chargebee_url: str) -> str:
    return chargebee_url.rstrip("/") + "/sites/{site}/api/v2"


def service_env(stripe_url: str | None, chargebee_url: str | None) -> dict[str, str]:
    """Environment values that point the connector and importer at the fakes."""
    env: dict[str, str] = {}
    if stripe_url:
        env.update(
            STRIPE_API_BASE=stripe_url,
            STRIPE_CONNECT_BASE=stripe_url,
            STRIPE_CLIENT_ID=cfg.SAMPLE_STRIPE_CLIENT_ID,
            STRIPE_PLATFORM_SECRET_KEY=cfg.SAMPLE_STRIPE_PLATFORM_SECRET_KEY,
        )
    if chargebee_url:
        env["CHARGEBEE_API_URL_TEMPLATE"] = chargebee_url_template(chargebee_url)
    return env


@dataclass
class RunningSandbox:
    """Both fakes serving from background threads; use as a context manager or call `stop()`."""

    dataset: Dataset
    stripe: BackgroundServer
    chargebee: BackgroundServer

    @property
    def stripe_url(self) -> str:
        return self.stripe.url

    @property
    def chargebee_url(self) -> str:
        return self.chargebee.url

    @property
    def chargebee_url_template(self) -> str:
        return chargebee_url_template(self.chargebee.url)

    def env(self) -> dict[str, str]:
        return service_env(self.stripe.url, self.chargebee.url)

    def stop(self) -> None:
        self.stripe.stop()
        self.chargebee.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_sandbox(
    dataset: Dataset | None = None,
    *,
    host: str = "127.0.0.1",
    stripe_port: int = 0,
    chargebee_port: int = 0,
    stripe_rate_limits: cfg.StripeRateLimits | None = None,
    latency_s: float = 0.0,
    chargebee_rate_limit_per_min: int | None = cfg.CHARGEBEE_DEFAULT_RATE_LIMIT_PER_MIN,
) -> RunningSandbox:
    """Start the fake Stripe and fake Chargebee (default sample configuration) on free ports.

    `chargebee_rate_limit_per_min` is every sample site's limit (None: unlimited), for a session
    whose many tests share one fake and together send more than a site's minute allows.
    """
    data = dataset or generate_dataset()
    sites = [
        dataclasses.replace(site, rate_limit_per_min=chargebee_rate_limit_per_min)
        for site in default_chargebee_sites(data)
    ]
    stripe = BackgroundServer(
        create_stripe_app(data, rate_limits=stripe_rate_limits, latency_s=latency_s),
        host=host,
        port=stripe_port,
    ).start()
    try:
        chargebee = BackgroundServer(
            create_chargebee_app(data, sites=sites, latency_s=latency_s), host=host, port=chargebee_port
        ).start()
    except BaseException:
        stripe.stop()
        raise
    return RunningSandbox(data, stripe, chargebee)
