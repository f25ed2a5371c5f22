"""Both fakes behind one port: Chargebee under `/sites/`, Stripe everywhere else.

Their paths do not overlap except the control API: on the shared port the fake Chargebee's is
`/_sandbox/chargebee/...` and the fake Stripe's `/_sandbox/...` (also `/_sandbox/stripe/...`).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox.admin import ADMIN_PREFIX

CHARGEBEE_PREFIX = "/sites/"
CHARGEBEE_ADMIN_PREFIX = f"{ADMIN_PREFIX}/chargebee"
STRIPE_ADMIN_PREFIX = f"{ADMIN_PREFIX}/stripe"


def _strip(scope: Scope, prefix: str) -> Scope:
    path = ADMIN_PREFIX + scope["path"][len(prefix) :]
    return {**scope, "path": path, "raw_path": path.encode()}


class CombinedApp:
    """Routes each request to the fake that owns its path."""

    def __init__(self, stripe: ASGIApp, chargebee: ASGIApp) -> None:
        self.stripe = stripe
        self.chargebee = chargebee

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.stripe(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(CHARGEBEE_PREFIX):
            await self.chargebee(scope, receive, send)
        elif path == CHARGEBEE_ADMIN_PREFIX or path.startswith(CHARGEBEE_ADMIN_PREFIX + "/"):
            await self.chargebee(_strip(scope, CHARGEBEE_ADMIN_PREFIX), receive, send)
        elif path == STRIPE_ADMIN_PREFIX or path.startswith(STRIPE_ADMIN_PREFIX + "/"):
            await self.stripe(_strip(scope, STRIPE_ADMIN_PREFIX), receive, send)
        else:
            await self.stripe(scope, receive, send)
