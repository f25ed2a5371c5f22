"""The official `stripe` SDK talks to the fake like to api.stripe.com."""

from __future__ import annotations

import subprocess
import sys

import pytest
import stripe as stripe_sdk
from sandbox.server import BackgroundServer

from sandbox import SAMPLE_STRIPE_KEY, Dataset


def client(base_url: str, key: str = SAMPLE_STRIPE_KEY) -> stripe_sdk.StripeClient:
    return stripe_sdk.StripeClient(key, base_addresses={"api": base_url}, max_network_retries=0)


def test_auto_paging_iter_lists_every_customer(stripe_server: BackgroundServer, dataset: Dataset) -> None:
    sdk = client(stripe_server.url)
    customers = [c.id for c in sdk.v1.customers.list({"limit": 13}).auto_paging_iter()]
    assert customers == [c["id"] for c in dataset.stripe["customers"]]


def test_subscriptions_and_expand(stripe_server: BackgroundServer, dataset: Dataset) -> None:
    sdk = client(stripe_server.url)
    subs = list(
        sdk.v1.subscriptions.list(
            {"status": "all", "limit": 100, "expand": ["data.customer"]}
        ).auto_paging_iter()
    )
    assert len(subs) == len(dataset.stripe["subscriptions"])
    customer = subs[0].customer
    assert not isinstance(customer, str)
    assert customer.object == "customer"
    assert sdk.v1.accounts.retrieve_current().id == "acct_1SandboxAcme0001"


def test_errors_map_to_sdk_exceptions(stripe_server: BackgroundServer) -> None:
    with pytest.raises(stripe_sdk.AuthenticationError):
        client(stripe_server.url, "sk_test_WrongWrongWrong00000000000000").v1.customers.list()
    with pytest.raises(stripe_sdk.InvalidRequestError) as raised:
        client(stripe_server.url).v1.customers.list({"starting_after": "cus_missing"})
    assert raised.value.code == "resource_missing"


def test_module_level_api_base(stripe_server: BackgroundServer, dataset: Dataset) -> None:
    saved = (stripe_sdk.api_base, stripe_sdk.api_key)
    stripe_sdk.api_base = stripe_server.url
    stripe_sdk.api_key = SAMPLE_STRIPE_KEY
    try:
        ids = [p.id for p in stripe_sdk.Price.list(limit=5).auto_paging_iter()]
    finally:
        stripe_sdk.api_base, stripe_sdk.api_key = saved
    assert ids == [p["id"] for p in dataset.stripe["prices"]]


def test_the_sandbox_does_not_need_the_chargebee_sdk() -> None:
    code = (
        "import sys; sys.modules['chargebee'] = None\n"
        "import sandbox, sandbox.__main__\n"
        "sandbox.create_chargebee_app(sandbox.generate_dataset(customers=3))\n"
        "assert 'chargebee' not in {m.split('.')[0] for m, v in sys.modules.items() if v is not None}\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
