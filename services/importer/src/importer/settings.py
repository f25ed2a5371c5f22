"""The importer's one settings class: the SPEC's variables plus the pipeline's tuning knobs."""

from __future__ import annotations

from typing import Final

from contracts.runtime.settings import CommonSettings
from pydantic import Field, SecretStr

SERVICE_NAME: Final = "importer"


class ImporterSettings(CommonSettings):
    http_port: int = Field(default=8001, ge=1, le=65535)
    #: Required: the service refuses to start without them (SPEC).
    api_jwt_secret: SecretStr
    credentials_keys: SecretStr
    stripe_api_base: str = "https://api.stripe.com"
    chargebee_api_url_template: str = "https://{site}.chargebee.com/api/v2"

    #: Page requests handled at once by this process (each mostly waits on the processor).
    page_concurrency: int = Field(default=48, ge=1, le=1024)
    #: Attempts at a page request before it goes to the dead-letter topic.
    page_max_attempts: int = Field(default=5, ge=1, le=50)
    page_retry_base_delay_s: float = Field(default=0.5, gt=0)
    page_retry_max_delay_s: float = Field(default=10.0, gt=0)
    #: Parallel chains of pages of one resource, and of a whole import (shared by resource size).
    #: Stripe live mode allows 100 requests/s and 25 per endpoint, test mode 25 and 10; a chain's
    #: cycle (page, store, next request through Kafka) is about half a second.
    stripe_live_chains_per_resource: int = Field(default=20, ge=1, le=100)
    stripe_live_import_chains: int = Field(default=48, ge=1, le=500)
    stripe_test_chains_per_resource: int = Field(default=6, ge=1, le=100)
    stripe_test_import_chains: int = Field(default=14, ge=1, le=500)
    chargebee_chains_per_resource: int = Field(default=2, ge=1, le=100)
    chargebee_import_chains: int = Field(default=3, ge=1, le=500)
    #: A window is cut only into pieces expected to hold this many pages or more: each window ends
    #: with a partly filled page, a request for less than a page's worth.
    min_pages_per_slice: int = Field(default=10, ge=1, le=1000)
    #: Share of a processor's published rate limit the importer uses (the rest absorbs jitter).
    processor_rate_headroom: float = Field(default=0.99, gt=0, le=1)
    #: Requests a minute a Chargebee site is first assumed to allow (the smallest plan's); each site's
    #: real limit is then learned from its answers and kept (``learned_rate_limits``).
    chargebee_requests_per_minute: float = Field(default=150.0, gt=0)
    #: Whether probing may raise a live Chargebee site's estimate past the configured limit (test
    #: sites always may): Chargebee flags a live site that goes over its limit and emails its admins.
    chargebee_probe_live_sites: bool = False
    progress_interval_s: float = Field(default=1.0, gt=0)
    finalize_lease_s: float = Field(default=120.0, gt=0)
    stale_page_after_s: float = Field(default=300.0, gt=0)
    recovery_interval_s: float = Field(default=5.0, gt=0)
    #: How often erases whose runner died are looked for and resumed.
    erase_recovery_interval_s: float = Field(default=60.0, gt=0)

    #: SPEC ``SYNC_INTERVAL_S``: how often each connected account's processor event list is read.
    sync_interval_s: float = Field(default=60.0, gt=0)
    #: Share of an account's rate limit sync may take while an import of it runs (the import keeps the
    #: rest); with no import running, sync may take the whole rate.
    sync_rate_share: float = Field(default=0.2, gt=0, le=1)
    #: How often each process looks for accounts due for a poll (at most ``SYNC_INTERVAL_S``).
    sync_schedule_period_s: float = Field(default=2.0, gt=0)
    #: A poll's cap: pages of the event list it reads at most, and events a page (the processors
    #: serve 100 at most); the rest is read by the next polls.
    sync_event_pages: int = Field(default=50, ge=1, le=10_000)
    sync_event_page_size: int = Field(default=100, ge=1, le=100)
