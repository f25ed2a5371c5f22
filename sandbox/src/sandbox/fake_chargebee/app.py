"""The fake Chargebee's HTTP surface: `/sites/{site}/api/v2/...` and `/_sandbox/...` control.

Give services `CHARGEBEE_API_URL_TEMPLATE=http://<host>:<port>/sites/{site}/api/v2`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandbox import config as cfg
from sandbox.admin import ADMIN_PREFIX, install_control
from sandbox.admin_changes import changes_router
from sandbox.collection import Obj
from sandbox.data import Dataset
from sandbox.events import SandboxClock
from sandbox.fake_chargebee.errors import ChargebeeError, not_found
from sandbox.fake_chargebee.events import list_events, parse_event_query, retrieve_event
from sandbox.fake_chargebee.lists import RESOURCES, ResourceSpec, list_page, parse_list_query
from sandbox.fake_chargebee.mutations import ChargebeeObjectAdmin, delete_key, roll_key
from sandbox.fake_chargebee.state import API_ROOT, ChargebeeSandbox, SiteState, default_chargebee_sites
from sandbox.fake_chargebee.webhooks import ChargebeeWebhookFlavor
from sandbox.fake_chargebee.writes import install_chargebee_writes
from sandbox.responses import json_response
from sandbox.webhooks import WebhookSender, webhooks_router


def create_chargebee_app(
    dataset: Dataset | None = None,
    *,
    sites: Sequence[cfg.ChargebeeSite] | None = None,
    latency_s: float = 0.0,
    retry_after: bool = True,
    clock: Callable[[], float] = time.monotonic,
    event_clock: SandboxClock | None = None,
) -> FastAPI:
    """The fake Chargebee as an ASGI app; `app.state.sandbox` is its `ChargebeeSandbox`.

    Defaults: the sample sites of `sandbox.config` (`acme-test` serves `dataset`, or the default
    dataset), each limited to 150 requests per minute; `retry_after` adds `Retry-After` to 429s.
    """
    sandbox = ChargebeeSandbox(
        sites if sites is not None else default_chargebee_sites(dataset),
        latency_s=latency_s,
        retry_after=retry_after,
        clock=clock,
        event_clock=event_clock,
    )
    app = FastAPI(
        title="Sandbox Chargebee",
        docs_url=f"{ADMIN_PREFIX}/docs",
        redoc_url=None,
        openapi_url=f"{ADMIN_PREFIX}/openapi.json",
    )
    app.state.sandbox = sandbox
    install_control(app, sandbox.control)
    webhooks = WebhookSender(ChargebeeWebhookFlavor(sandbox))
    sandbox.changes.listeners.append(webhooks.offer)
    sandbox.changes.endpoint_count = webhooks.count_for
    sandbox.control.extra_stats["webhooks"] = webhooks.totals
    app.state.webhooks = webhooks
    app.include_router(webhooks_router(webhooks))
    app.include_router(changes_router(ChargebeeObjectAdmin(sandbox)))
    _add_chargebee_admin_routes(app, sandbox)
    _add_error_handlers(app)
    install_chargebee_writes(app, sandbox)
    _add_event_routes(app, sandbox)
    for spec in RESOURCES.values():
        _add_resource_routes(app, sandbox, spec)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    async def chargebee_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ChargebeeError)
        return json_response(exc.body(), exc.status, exc.headers)

    async def unknown_url(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if request.url.path.startswith(ADMIN_PREFIX):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        error = ChargebeeError(
            exc.status_code,
            "http_method_not_supported" if exc.status_code == 405 else "resource_not_found",
            f"Sorry, the requested URL {request.url.path} is not supported",
        )
        return json_response(error.body(), exc.status_code)

    app.add_exception_handler(ChargebeeError, chargebee_error)
    app.add_exception_handler(StarletteHTTPException, unknown_url)


def _check_catalog(site: SiteState, spec: ResourceSpec) -> None:
    version = site.site.catalog_version
    if spec.catalog is not None and spec.catalog != version:
        raise ChargebeeError(
            400,
            "configuration_incompatible",
            f"The {spec.name} API is not available for sites on Product Catalog {version}. "
            f"It is only available for sites on Product Catalog {spec.catalog}.",
        )


def _entry(site: SiteState, spec: ResourceSpec, obj: Obj) -> Obj:
    entry: Obj = {spec.object_name: obj}
    if spec.name == "subscriptions":
        customers = site.collections["customers"]
        customer_id = str(obj.get("customer_id", ""))
        customer = customers.get(customer_id) or customers.removed(customer_id)
        if customer is not None:
            entry["customer"] = customer
    return entry


def _add_event_routes(app: FastAPI, sandbox: ChargebeeSandbox) -> None:
    @app.get(f"{API_ROOT}/events")
    async def list_site_events(request: Request, site: str) -> Response:
        state = sandbox.authorize(request, site, "events")
        query = parse_event_query(request.query_params.multi_items())
        items, next_offset = list_events(sandbox.changes.log(state.site.name), query)
        body: Obj = {"list": [{"event": event} for event in items]}
        if next_offset is not None:
            body["next_offset"] = next_offset
        if sandbox.settings.latency_s > 0:
            await asyncio.sleep(sandbox.settings.latency_s)
        return json_response(body)

    @app.get(f"{API_ROOT}/events/{{event_id}}")
    async def get_site_event(request: Request, site: str, event_id: str) -> Response:
        state = sandbox.authorize(request, site, "events")
        return json_response({"event": retrieve_event(sandbox.changes.log(state.site.name), event_id)})


def _add_chargebee_admin_routes(app: FastAPI, sandbox: ChargebeeSandbox) -> None:
    @app.post(f"{ADMIN_PREFIX}/keys/roll", tags=["sandbox data changes"])
    async def roll_site_key(body: dict[str, Any]) -> Response:
        """`{site?, key?}`: a new key replaces `key` (default: the site's first full-access key)."""
        site = sandbox.sites.get(str(body.get("site") or sandbox.primary_site))
        if site is None:
            return JSONResponse({"detail": f"no such site: {body.get('site')}"}, status_code=404)
        try:
            return json_response(roll_key(site, body.get("key")))
        except KeyError as exc:
            return JSONResponse({"detail": str(exc.args[0])}, status_code=404)

    @app.post(f"{ADMIN_PREFIX}/keys/delete", tags=["sandbox data changes"])
    async def delete_site_key(body: dict[str, Any]) -> Response:
        """`{site?, key?}`: the key is deleted, nothing replaces it (default: the first full-access key)."""
        site = sandbox.sites.get(str(body.get("site") or sandbox.primary_site))
        if site is None:
            return JSONResponse({"detail": f"no such site: {body.get('site')}"}, status_code=404)
        try:
            return json_response(delete_key(site, body.get("key")))
        except KeyError as exc:
            return JSONResponse({"detail": str(exc.args[0])}, status_code=404)


def _add_resource_routes(app: FastAPI, sandbox: ChargebeeSandbox, spec: ResourceSpec) -> None:
    list_path = f"{API_ROOT}/{spec.name}"

    async def list_objects(request: Request, site: str) -> Response:
        state = sandbox.authorize(request, site, spec.name)
        _check_catalog(state, spec)
        query = parse_list_query(spec, request.query_params.multi_items())
        page, next_offset = list_page(spec, state.collections[spec.name], query)
        body: Obj = {"list": [_entry(state, spec, obj) for obj in page.items]}
        if next_offset is not None:
            body["next_offset"] = next_offset
        if sandbox.settings.latency_s > 0:
            await asyncio.sleep(sandbox.settings.latency_s)
        return json_response(body)

    async def retrieve_object(request: Request, site: str, object_id: str) -> Response:
        state = sandbox.authorize(request, site, spec.name)
        _check_catalog(state, spec)
        obj = state.collections[spec.name].get(object_id)
        if obj is None:
            raise not_found(spec.object_name)
        return json_response(_entry(state, spec, obj))

    app.add_api_route(list_path, list_objects, methods=["GET"], name=f"list_{spec.name}")
    app.add_api_route(
        list_path + "/{object_id}", retrieve_object, methods=["GET"], name=f"retrieve_{spec.name}"
    )
