"""What the onboarding page's unit tests share: the app over fakes, signed links, an HTML reader."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from html.parser import HTMLParser
from typing import Any

import httpx
import jwt
from connector.domain.import_counts import ImportCounts
from connector.entrypoints.onboarding_session import mint_onboarding_link
from connector.settings import ConnectorSettings
from connector_fakes import World
from connector_unit_kit import JWT_SECRET, app_over

BASE_URL = "https://connector.test"


class InMemoryImportCounts:
    """Counts per import, only ever raised (like the real store's ``$max``)."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], ImportCounts] = {}

    async def record(
        self,
        account_id: str,
        import_id: str,
        resources: Mapping[str, int],
        *,
        at: datetime,
        past_cancellations: int | None = None,
    ) -> None:
        known = self.counts.get((account_id, import_id), ImportCounts(import_id))
        merged = dict(known.resources)
        for name, count in resources.items():
            merged[name] = max(count, merged.get(name, 0))
        cancellations = known.past_cancellations
        if past_cancellations is not None:
            cancellations = max(past_cancellations, cancellations or 0)
        self.counts[(account_id, import_id)] = ImportCounts(import_id, merged, cancellations)

    async def counts_of(self, account_id: str, import_id: str) -> ImportCounts | None:
        return self.counts.get((account_id, import_id))


def with_import_counts(world: World) -> InMemoryImportCounts:
    counts = InMemoryImportCounts()
    world.deps = dataclasses.replace(world.deps, import_counts=counts)
    return counts


@asynccontextmanager
async def browser_over(
    world: World, settings: ConnectorSettings | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client that keeps cookies, like a browser, over the connector app on ``world``."""

    transport = httpx.ASGITransport(app=app_over(world, settings))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        yield client


def link_for(account_id: str, *, ttl_s: int = 600, contact_email: str | None = None) -> str:
    return mint_onboarding_link(
        JWT_SECRET, account_id, base_url=BASE_URL, ttl_s=ttl_s, contact_email=contact_email
    )


def token_of(link: str) -> str:
    return link.split("token=", 1)[1]


def signed(claims: dict[str, Any], secret: str = JWT_SECRET) -> str:
    return jwt.encode({"exp": int(time.time()) + 600, **claims}, secret, algorithm="HS256")


async def open_session(client: httpx.AsyncClient, account_id: str, **link: Any) -> None:
    response = await client.get(link_for(account_id, **link).removeprefix(BASE_URL))
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/onboarding"


class Page(HTMLParser):
    """The parts of a page the tests look at: text, form fields, labels, alerts, the CSRF token."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.html = html
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.label_targets: set[str] = set()
        self.alerts: list[str] = []
        self._alert_depth = 0
        self._depth = 0
        self._texts: list[str] = []
        self.feed(html)
        self.text = re.sub(r"\s+", " ", " ".join(self._texts)).strip()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        self.elements.append((tag, attributes))
        if tag == "label" and "for" in attributes:
            self.label_targets.add(attributes["for"])
        if tag in ("input", "meta", "link", "br"):
            return
        self._depth += 1
        if attributes.get("role") == "alert" and not self._alert_depth:
            self._alert_depth = self._depth
            self.alerts.append("")

    def handle_endtag(self, tag: str) -> None:
        if self._alert_depth and self._depth == self._alert_depth:
            self._alert_depth = 0
        self._depth -= 1

    def handle_data(self, data: str) -> None:
        self._texts.append(data)
        if self._alert_depth:
            self.alerts[-1] = re.sub(r"\s+", " ", self.alerts[-1] + " " + data).strip()

    def inputs(self) -> dict[str, dict[str, str]]:
        return {a["name"]: a for tag, a in self.elements if tag == "input" and "name" in a}

    def visible_inputs(self) -> dict[str, dict[str, str]]:
        return {name: a for name, a in self.inputs().items() if a.get("type") != "hidden"}

    def by_id(self, element_id: str) -> dict[str, str] | None:
        return next((a for _, a in self.elements if a.get("id") == element_id), None)

    @property
    def csrf_token(self) -> str:
        return self.inputs()["csrf_token"]["value"]

    def forms(self) -> list[dict[str, str]]:
        return [a for tag, a in self.elements if tag == "form"]


async def page_at(client: httpx.AsyncClient, path: str, status: int = 200) -> Page:
    response = await client.get(path)
    assert response.status_code == status, response.text
    return Page(response.text)
