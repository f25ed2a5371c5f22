"""Chargebee webhooks from the fake: the event JSON, POSTed with the HTTP Basic credentials the
site admin configured for the endpoint (Chargebee signs nothing)."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING

from sandbox.collection import Obj
from sandbox.webhooks import EndpointSpec

if TYPE_CHECKING:
    from sandbox.fake_chargebee.state import ChargebeeSandbox

USER_AGENT = "ChargeBee"


class ChargebeeWebhookFlavor:
    def __init__(self, sandbox: ChargebeeSandbox) -> None:
        self.sandbox = sandbox

    def validate(self, spec: EndpointSpec) -> None:
        if (spec.username is None) != (spec.password is None):
            raise ValueError("give both username and password, or neither")
        unknown = set(spec.scopes or ()) - set(self.sandbox.sites)
        if unknown:
            raise ValueError(f"no such sites: {sorted(unknown)}")

    def wants(self, spec: EndpointSpec, scope: str, event: Obj) -> bool:
        return spec.scopes is None or scope in spec.scopes

    def body(self, scope: str, event: Obj) -> bytes:
        return json.dumps(event, ensure_ascii=False).encode()

    def headers(self, spec: EndpointSpec, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if spec.username is not None:
            token = base64.b64encode(f"{spec.username}:{spec.password or ''}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        return headers
