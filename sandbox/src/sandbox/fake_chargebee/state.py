"""State of one fake Chargebee: sites with their keys, catalog version, objects and rate limits."""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from fastapi import Request

from sandbox import config as cfg
from sandbox.admin import FaultSpec, SandboxControl
from sandbox.collection import Collection, Obj
from sandbox.data import Dataset, DatasetOptions, generate_dataset
from sandbox.events import SandboxClock
from sandbox.fake_chargebee.changes import UNSET, ChargebeeChanges
from sandbox.fake_chargebee.errors import (
    RATE_LIMIT_MESSAGE,
    ChargebeeError,
    authentication_failed,
    authorization_failed,
    injected_error,
    site_blocked,
    site_not_found,
)
from sandbox.fake_chargebee.lists import RESOURCES
from sandbox.idempotency import IdempotencyKeys
from sandbox.ratelimit import SlidingWindowLimit

API_ROOT = "/sites/{site}/api/v2"


@dataclass
class SiteState:
    site: cfg.ChargebeeSite
    collections: dict[str, Collection]
    keys: dict[str, cfg.ChargebeeKey]


@dataclass(frozen=True)
class ChargebeeSettings:
    latency_s: float
    retry_after: bool
    rate_limits_per_min: dict[str, int | None]


def default_chargebee_sites(dataset: Dataset | None = None) -> list[cfg.ChargebeeSite]:
    """The sample sites: `acme-test` (the dataset), `acme-legacy-test` (PC 1.0), blocked, live."""
    data = dataset or generate_dataset()
    legacy = generate_dataset(
        DatasetOptions(seed=11, customers=20, stripe=False, chargebee_catalog_version="1.0")
    )
    return [
        cfg.ChargebeeSite(
            cfg.SAMPLE_CHARGEBEE_SITE,
            (
                cfg.ChargebeeKey(cfg.SAMPLE_CHARGEBEE_KEY),
                cfg.ChargebeeKey(
                    cfg.SAMPLE_CHARGEBEE_RESTRICTED_KEY, cfg.chargebee_resources_except("invoices")
                ),
                cfg.ChargebeeKey(cfg.SAMPLE_CHARGEBEE_READ_ONLY_KEY, frozenset(cfg.CHARGEBEE_RESOURCES)),
            ),
            catalog_version=data.options.chargebee_catalog_version,
            data=data.chargebee,
        ),
        cfg.ChargebeeSite(
            cfg.SAMPLE_CHARGEBEE_PC1_SITE,
            (cfg.ChargebeeKey(cfg.SAMPLE_CHARGEBEE_PC1_KEY),),
            catalog_version="1.0",
            data=legacy.chargebee,
        ),
        cfg.ChargebeeSite(
            cfg.SAMPLE_CHARGEBEE_BLOCKED_SITE,
            (cfg.ChargebeeKey(cfg.SAMPLE_CHARGEBEE_BLOCKED_KEY),),
            blocked=True,
        ),
        cfg.ChargebeeSite(
            cfg.SAMPLE_CHARGEBEE_LIVE_SITE,
            (cfg.ChargebeeKey(cfg.live_chargebee_key()),),
            catalog_version="1.0",
            data=legacy.chargebee,
        ),
    ]


def _collections(data: Mapping[str, list[Obj]]) -> dict[str, Collection]:
    return {
        name: Collection(name, data.get(name, []), sort_fields=spec.all_sort_fields)
        for name, spec in RESOURCES.items()
    }


def basic_username(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None


class ChargebeeSandbox:
    """Everything one fake Chargebee knows; also the `ProcessorHooks` of its control API."""

    def __init__(
        self,
        sites: Sequence[cfg.ChargebeeSite],
        *,
        latency_s: float,
        retry_after: bool,
        clock: Callable[[], float],
        event_clock: SandboxClock | None = None,
    ) -> None:
        if not sites:
            raise ValueError("the fake Chargebee needs at least one site")
        self.sites: dict[str, SiteState] = {
            s.name: SiteState(s, _collections(s.data), {k.key: k for k in s.keys}) for s in sites
        }
        self.primary_site = sites[0].name
        self.clock = clock
        self._initial_settings = ChargebeeSettings(
            latency_s, retry_after, {s.name: s.rate_limit_per_min for s in sites}
        )
        self.settings = self._initial_settings
        self._limiters: dict[str, SlidingWindowLimit] = {}
        self.control = SandboxControl(self, request_id_header=None)
        self.changes = ChargebeeChanges(lambda site: self.sites[site].collections, clock=event_clock)
        #: Saved answers of idempotent writes (see `sandbox.fake_chargebee.writes`).
        self.idempotency = IdempotencyKeys()

    def record_change(self, site: str, resource: str, obj: Obj, *, created: bool) -> None:
        """An API write changed (or created) an object: stored, with its event and webhooks."""
        self.changes.record_change(site, resource, obj, source="api", previous=None if created else UNSET)

    def collection(self, site: str | None, resource: str) -> Collection:
        """A resource of a site (the primary one by default), for tests in this process."""
        return self.sites[site or self.primary_site].collections[resource]

    # --- ProcessorHooks ---------------------------------------------------------------------
    def error_body(self, status: int, message: str | None, path: str) -> dict[str, Any]:
        return injected_error(status, message)

    def fault_headers(self, spec: FaultSpec) -> dict[str, str]:
        return {}

    def api_path(self, path: str) -> str:
        parts = path.split("/", 5)  # "", "sites", site, "api", "v2", rest
        if len(parts) == 6 and parts[1] == "sites" and parts[3] == "api":
            return "/" + parts[5]
        return path

    def delete_objects(self, scope: str | None, resource: str, ids: list[str]) -> dict[str, Any]:
        """Mark objects deleted, as Chargebee does: they leave lists unless include_deleted=true."""
        site = self.sites.get(scope or self.primary_site)
        if site is None:
            raise KeyError(f"no such site: {scope}")
        collection = site.collections.get(resource)
        if collection is None:
            raise KeyError(f"no such resource: {resource}")
        deleted = [
            object_id
            for object_id in ids
            if self.changes.record_deletion(site.site.name, resource, object_id) is not None
        ]
        return {"deleted": deleted, "missing": [i for i in ids if i not in deleted]}

    def current_settings(self) -> dict[str, Any]:
        return {
            "latency_s": self.settings.latency_s,
            "retry_after": self.settings.retry_after,
            "rate_limits_per_min": dict(self.settings.rate_limits_per_min),
        }

    def update_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        unknown = set(changes) - {"latency_s", "retry_after", "rate_limits_per_min"}
        if unknown:
            raise KeyError(f"unknown settings: {sorted(unknown)}")
        limits = dict(self.settings.rate_limits_per_min)
        for site, limit in (changes.get("rate_limits_per_min") or {}).items():
            if site not in self.sites:
                raise KeyError(f"no such site: {site}")
            limits[site] = None if limit is None else int(limit)
        latency = float(changes.get("latency_s", self.settings.latency_s))
        if latency < 0:
            raise ValueError("latency_s must be >= 0")
        self.settings = replace(
            self.settings,
            latency_s=latency,
            retry_after=bool(changes.get("retry_after", self.settings.retry_after)),
            rate_limits_per_min=limits,
        )
        self._limiters.clear()
        return self.current_settings()

    def reset_data(self) -> None:
        for site in self.sites.values():
            for collection in site.collections.values():
                collection.reset()
            site.keys = {k.key: k for k in site.site.keys}
        self.settings = self._initial_settings
        self._limiters.clear()
        self.idempotency.clear()
        self.changes.reset()

    # --- requests ------------------------------------------------------------------------------
    def authorize(self, request: Request, site_name: str, resource: str) -> SiteState:
        """Site, key and permission checks, then the site's rate limit; raises ChargebeeError."""
        site = self.sites.get(site_name)
        if site is None:
            raise site_not_found()
        if site.site.blocked:
            raise site_blocked()
        username = basic_username(request)
        key = site.keys.get(username or "")
        if key is None:
            raise authentication_failed()
        if key.resources is not None and resource not in key.resources:
            raise authorization_failed()
        self.control.stats.by_scope[site_name] += 1
        self._check_rate(site_name)
        return site

    def _check_rate(self, site_name: str) -> None:
        """Chargebee counts a site's requests over the past 60 seconds: past its limit, every request
        is refused (429 ``api_request_limit_exceeded``) until the count falls back under it."""
        per_min = self.settings.rate_limits_per_min.get(site_name)
        if per_min is None:
            return
        limiter = self._limiters.get(site_name)
        if limiter is None:
            limiter = self._limiters[site_name] = SlidingWindowLimit(per_min, 60.0, clock=self.clock)
        wait_s = limiter.admit()
        if wait_s is None:
            return
        stats = self.control.stats
        stats.rate_limited += 1
        stats.rate_limited_by_reason["site-rate"] += 1
        headers = {}
        if self.settings.retry_after:
            headers["Retry-After"] = str(max(1, math.ceil(wait_s)))
        raise ChargebeeError(429, "api_request_limit_exceeded", RATE_LIMIT_MESSAGE, headers=headers)
