"""Sends a peer's Stripe/Chargebee requests to the sandbox (loaded by Python at start via PYTHONPATH).

Neither ``tap-stripe`` nor ``airbyte-source-stripe`` lets its configuration change Stripe's base URL
(``https://api.stripe.com`` is fixed in tap-stripe's request timer and in airbyte's manifest), and
both send every request through ``requests``. This rewrites the scheme and host of each request
``requests`` sends to ``PEER_API_BASE`` when its URL starts with ``PEER_REAL_BASE``; the peer's
own code is unchanged.
"""

from __future__ import annotations

import os

_REAL = os.environ.get("PEER_REAL_BASE", "")
_FAKE = os.environ.get("PEER_API_BASE", "")

if _REAL and _FAKE:
    import requests.adapters

    _send = requests.adapters.HTTPAdapter.send

    def _send_to_sandbox(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        if request.url and request.url.startswith(_REAL):
            request.url = _FAKE + request.url[len(_REAL) :]
        return _send(self, request, *args, **kwargs)

    requests.adapters.HTTPAdapter.send = _send_to_sandbox  # type: ignore[method-assign]
