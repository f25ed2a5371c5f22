"""The fake processors (sandbox), served over real HTTP from background threads for the adapter tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sandbox.data import Dataset, generate_dataset
from sandbox.fake_chargebee import create_chargebee_app
from sandbox.fake_chargebee.state import default_chargebee_sites
from sandbox.fake_stripe import create_stripe_app
from sandbox.runner import chargebee_url_template
from sandbox.server import BackgroundServer


@dataclass(frozen=True)
class Fakes:
    dataset: Dataset
    stripe_url: str
    chargebee_url: str

    @property
    def chargebee_url_template(self) -> str:
        return chargebee_url_template(self.chargebee_url)


@pytest.fixture(scope="session")
def fakes() -> Iterator[Fakes]:
    # Many customers share a creation instant (a bulk migration): windows must split ties exactly.
    dataset = generate_dataset(customers=40, shared_created_ratio=0.4)
    # Chargebee's 150 requests/min would make these tests slow; its 429 is exercised by injection.
    sites = [dataclasses.replace(site, rate_limit_per_min=None) for site in default_chargebee_sites(dataset)]
    with (
        BackgroundServer(create_stripe_app(dataset)) as stripe,
        BackgroundServer(create_chargebee_app(dataset, sites=sites)) as chargebee,
    ):
        yield Fakes(dataset, stripe.url, chargebee.url)
