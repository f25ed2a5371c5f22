"""The fake Stripe's HTTP surface: `/v1/...` read API, `/oauth/...` Connect, `/_sandbox/...` control.

Point both `STRIPE_API_BASE` and `STRIPE_CONNECT_BASE` at the same server.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandbox import config as cfg
from sandbox.admin import ADMIN_PREFIX, install_control
from sandbox.admin_changes import changes_router
from sandbox.data import Dataset
from sandbox.events import SandboxClock
from sandbox.fake_stripe.changes import STRIPE_API_VERSION
from sandbox.fake_stripe.errors import StripeError, mask_key
from sandbox.fake_stripe.events import list_events, parse_event_query, retrieve_event
from sandbox.fake_stripe.lists import LISTS, expand, list_page, parse_list_query, resolver_for
from sandbox.fake_stripe.mutations import StripeObjectAdmin, deauthorize_account, roll_stripe_key
from sandbox.fake_stripe.oauth import with_query
from sandbox.fake_stripe.state import (
    AuthContext,
    StripeSandbox,
    default_stripe_accounts,
    default_stripe_keys,
    key_from_request,
)
from sandbox.fake_stripe.webhooks import StripeWebhookFlavor
from sandbox.fake_stripe.writes import install_stripe_writes
from sandbox.pages import authorize_page, page
from sandbox.responses import json_response
from sandbox.webhooks import WebhookSender, webhooks_router

__all__ = ["STRIPE_API_VERSION", "create_stripe_app", "stripe_json"]
_EXPAND = re.compile(r"expand\[\d*\]")


def create_stripe_app(
    dataset: Dataset | None = None,
    *,
    accounts: Sequence[cfg.StripeAccount] | None = None,
    keys: Sequence[cfg.StripeKey] | None = None,
    platform: cfg.StripePlatform | None = None,
    rate_limits: cfg.StripeRateLimits | None = None,
    latency_s: float = 0.0,
    clock: Callable[[], float] = time.monotonic,
    event_clock: SandboxClock | None = None,
) -> FastAPI:
    """The fake Stripe as an ASGI app; `app.state.sandbox` is its `StripeSandbox`.

    Defaults: the sample accounts (`dataset`, or the default dataset, as Acme) and keys of
    `sandbox.config`, the sample Connect platform, no rate limits, no latency.
    """
    sandbox = StripeSandbox(
        accounts if accounts is not None else default_stripe_accounts(dataset),
        keys if keys is not None else default_stripe_keys(),
        platform=platform or cfg.StripePlatform(),
        rate_limits=rate_limits or cfg.StripeRateLimits(),
        latency_s=latency_s,
        clock=clock,
        event_clock=event_clock,
    )
    app = FastAPI(
        title="Sandbox Stripe",
        docs_url=f"{ADMIN_PREFIX}/docs",
        redoc_url=None,
        openapi_url=f"{ADMIN_PREFIX}/openapi.json",
    )
    app.state.sandbox = sandbox
    install_control(app, sandbox.control)
    webhooks = WebhookSender(StripeWebhookFlavor(sandbox))
    sandbox.changes.listeners.append(webhooks.offer)
    sandbox.changes.endpoint_count = webhooks.count_for
    sandbox.control.extra_stats["webhooks"] = webhooks.totals
    app.state.webhooks = webhooks
    app.include_router(webhooks_router(webhooks))
    app.include_router(changes_router(StripeObjectAdmin(sandbox)))
    _add_stripe_admin_routes(app, sandbox)
    _add_key_routes(app, sandbox)
    _add_error_handlers(app)
    _add_api_routes(app, sandbox)
    install_stripe_writes(app, sandbox, stripe_json)
    _add_event_routes(app, sandbox)
    _add_oauth_routes(app, sandbox)
    return app


def stripe_json(
    request: Request, body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    version = request.headers.get("stripe-version") or STRIPE_API_VERSION
    return json_response(body, status, {"Stripe-Version": version, **(headers or {})})


def _add_error_handlers(app: FastAPI) -> None:
    async def stripe_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StripeError)
        return stripe_json(request, exc.body(), exc.status, exc.headers)

    async def unknown_url(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if request.url.path.startswith(ADMIN_PREFIX):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        message = (
            f"Unrecognized request URL ({request.method}: {request.url.path}). Please see "
            "https://stripe.com/docs or we can help at https://support.stripe.com/."
        )
        return stripe_json(request, StripeError(exc.status_code, message).body(), exc.status_code)

    app.add_exception_handler(StripeError, stripe_error)
    app.add_exception_handler(StarletteHTTPException, unknown_url)


def _add_api_routes(app: FastAPI, sandbox: StripeSandbox) -> None:
    def guarded(request: Request, resource: str, endpoint: str) -> AuthContext:
        ctx = sandbox.authenticate(request, resource)
        sandbox.check_rate(ctx, endpoint)
        return ctx

    @app.get("/v1/account")
    async def get_account(request: Request) -> Response:
        ctx = guarded(request, "account", "/v1/account")
        return stripe_json(request, ctx.account.object_json())

    @app.get("/v1/accounts/{account_id}")
    async def get_connected_account(request: Request, account_id: str) -> Response:
        ctx = guarded(request, "account", "/v1/accounts/{account}")
        target = sandbox.accounts.get(account_id)
        if target is None:
            raise StripeError(
                404, f"No such account: '{account_id}'", code="resource_missing", param="account"
            )
        own = account_id == ctx.account.account.id
        if not own and not (ctx.account.platform and account_id in sandbox.oauth.connected):
            raise StripeError(
                403,
                f"The provided key '{mask_key(ctx.key)}' does not have access to account '{account_id}'.",
                code="account_invalid",
            )
        return stripe_json(request, target.object_json())

    for resource in LISTS:
        _add_resource_routes(app, sandbox, resource, guarded)


def _add_event_routes(app: FastAPI, sandbox: StripeSandbox) -> None:
    def context(request: Request, endpoint: str) -> AuthContext:
        ctx = sandbox.authenticate(request, "events")
        sandbox.check_rate(ctx, endpoint)
        return ctx

    def shown(ctx: AuthContext, event: dict[str, Any]) -> dict[str, Any]:
        """Read through Connect (platform key + Stripe-Account, or an OAuth token): with `account`."""
        account_id = ctx.account.account.id
        if ctx.key in sandbox.keys or account_id == sandbox.platform.account_id:
            return event
        return {"id": event["id"], "object": "event", "account": account_id, **event}

    @app.get("/v1/events")
    async def list_all_events(request: Request) -> Response:
        ctx = context(request, "/v1/events")
        query = parse_event_query(request.query_params.multi_items())
        changes = sandbox.changes
        items, has_more = list_events(changes.log(ctx.account.account.id), query, changes.oldest_kept())
        if sandbox.settings.latency_s > 0:
            await asyncio.sleep(sandbox.settings.latency_s)
        body = {
            "object": "list",
            "data": [shown(ctx, e) for e in items],
            "has_more": has_more,
            "url": "/v1/events",
        }
        return stripe_json(request, body)

    @app.get("/v1/events/{event_id}")
    async def get_event(request: Request, event_id: str) -> Response:
        ctx = context(request, "/v1/events/{id}")
        changes = sandbox.changes
        event = retrieve_event(changes.log(ctx.account.account.id), event_id, changes.oldest_kept())
        return stripe_json(request, shown(ctx, event))


def _add_stripe_admin_routes(app: FastAPI, sandbox: StripeSandbox) -> None:
    @app.post(f"{ADMIN_PREFIX}/deauthorize", tags=["sandbox data changes"])
    async def deauthorize(body: dict[str, Any]) -> Response:
        """`{account, revoke_keys?}`: the account removes the platform's app (Connect)."""
        account_id = str(body.get("account") or sandbox.primary_account_id)
        try:
            result = deauthorize_account(
                sandbox, account_id, revoke_keys=bool(body.get("revoke_keys", False))
            )
        except KeyError as exc:
            return JSONResponse({"detail": str(exc.args[0])}, status_code=404)
        return json_response(result)


def _add_key_routes(app: FastAPI, sandbox: StripeSandbox) -> None:
    @app.post(f"{ADMIN_PREFIX}/keys/roll", tags=["sandbox data changes"])
    async def roll_key(body: dict[str, Any]) -> Response:
        """`{key?}`: a new secret key of the same account replaces `key`; the old one gets 401."""
        try:
            return json_response(roll_stripe_key(sandbox, body.get("key")))
        except KeyError as exc:
            return JSONResponse({"detail": str(exc.args[0])}, status_code=404)


def _add_resource_routes(
    app: FastAPI,
    sandbox: StripeSandbox,
    resource: str,
    guarded: Callable[[Request, str, str], AuthContext],
) -> None:
    list_path = f"/v1/{resource}"
    spec = LISTS[resource]

    async def list_objects(request: Request) -> Response:
        ctx = guarded(request, resource, list_path)
        query = parse_list_query(resource, request.query_params.multi_items())
        collection = ctx.account.collections[resource]
        found = list_page(resource, collection, query)
        items = found.items
        if query.expand:
            resolve = resolver_for(ctx.account.collections)
            items = [expand(obj, query.expand, resolve, in_list=True) for obj in items]
        if sandbox.settings.latency_s > 0:
            await asyncio.sleep(sandbox.settings.latency_s)
        body = {"object": "list", "data": items, "has_more": found.has_more, "url": list_path}
        return stripe_json(request, body)

    async def retrieve_object(request: Request, object_id: str) -> Response:
        ctx = guarded(request, resource, list_path + "/{id}")
        collection = ctx.account.collections[resource]
        obj = collection.get(object_id)
        if obj is None:
            if spec.deletable and collection.removed(object_id) is not None:
                return stripe_json(request, {"id": object_id, "object": spec.object_name, "deleted": True})
            raise StripeError(
                404, f"No such {spec.object_name}: '{object_id}'", code="resource_missing", param="id"
            )
        paths = [v for k, v in request.query_params.multi_items() if _EXPAND.fullmatch(k)]
        if paths:
            obj = expand(obj, paths, resolver_for(ctx.account.collections), in_list=False)
        return stripe_json(request, obj)

    app.add_api_route(list_path, list_objects, methods=["GET"], name=f"list_{resource}")
    app.add_api_route(
        list_path + "/{object_id}", retrieve_object, methods=["GET"], name=f"retrieve_{resource}"
    )


async def _form(request: Request) -> dict[str, str]:
    return {k: str(v) for k, v in (await request.form()).items()}


def _add_oauth_routes(app: FastAPI, sandbox: StripeSandbox) -> None:
    oauth = sandbox.oauth
    platform = sandbox.platform

    @app.get("/oauth/authorize")
    async def consent_screen(request: Request) -> Response:
        q = request.query_params
        client_id = q.get("client_id", "")
        if client_id != platform.client_id:
            return page(400, "Invalid request", f"No application matches the client_id {client_id!r}.")
        if q.get("response_type", "code") != "code":
            return page(400, "Invalid request", "response_type must be 'code'.")
        scope = q.get("scope", "read_only")
        if scope not in ("read_only", "read_write"):
            return page(400, "Invalid request", f"Invalid scope {scope!r}: use read_only or read_write.")
        redirect_uri = q.get("redirect_uri") or next(iter(platform.allowed_redirect_uris or ()), "")
        if not redirect_uri or not oauth.redirect_allowed(redirect_uri):
            return page(400, "Invalid request", f"Invalid redirect_uri {redirect_uri!r}.")
        accounts = [sandbox.accounts[a].account for a in sandbox.connectable]
        return authorize_page(
            platform_name=platform.name,
            client_id=client_id,
            redirect_uri=redirect_uri,
            state=q.get("state", ""),
            scope=scope,
            accounts=[(a.id, a.business_name) for a in accounts],
            selected=q.get("stripe_user_id") or sandbox.primary_account_id,
        )

    @app.post("/oauth/authorize")
    async def consent_decision(request: Request) -> Response:
        form = await _form(request)
        if form.get("client_id") != platform.client_id:
            return page(400, "Invalid request", "Unknown client_id.")
        redirect_uri = form.get("redirect_uri", "")
        if not oauth.redirect_allowed(redirect_uri):
            return page(400, "Invalid request", f"Invalid redirect_uri {redirect_uri!r}.")
        state = {"state": form["state"]} if form.get("state") else {}
        if form.get("decision") != "authorize":
            denied = {"error": "access_denied", "error_description": "The user denied your request", **state}
            return RedirectResponse(with_query(redirect_uri, denied), status_code=302)
        account_id = form.get("account") or sandbox.primary_account_id
        if account_id not in sandbox.connectable:
            return page(400, "Invalid request", f"Unknown account {account_id!r}.")
        scope = form.get("scope", "read_only")
        code = oauth.issue_code(account_id, scope, redirect_uri)
        target = with_query(redirect_uri, {"scope": scope, "code": code, **state})
        return RedirectResponse(target, status_code=302)

    @app.post("/oauth/token")
    async def token(request: Request) -> Response:
        form = await _form(request)
        status, body = oauth.exchange(form, form.get("client_secret") or key_from_request(request))
        return json_response(body, status)

    @app.post("/oauth/deauthorize")
    async def deauthorize(request: Request) -> Response:
        form = await _form(request)
        secret = form.get("client_secret") or key_from_request(request)
        if secret not in platform.secret_keys:
            return json_response(
                {"error": "invalid_client", "error_description": "Invalid API Key provided"}, 401
            )
        account_id = form.get("stripe_user_id", "")
        if form.get("client_id") != platform.client_id or account_id not in oauth.connected:
            body = {"error": "invalid_client", "error_description": f"No such connection: {account_id}"}
            return json_response(body, 400)
        oauth.deauthorize(account_id)
        return json_response({"stripe_user_id": account_id})
