"""Fixtures: the sample dataset and both fakes served over real HTTP on free ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sandbox.server import BackgroundServer
from sandbox_kit import Http

from sandbox import (
    Dataset,
    SandboxAdmin,
    create_chargebee_app,
    create_stripe_app,
    generate_dataset,
    serve_in_thread,
)


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    return generate_dataset()


@pytest.fixture(scope="session")
def stripe_server(dataset: Dataset) -> Iterator[BackgroundServer]:
    server = serve_in_thread(create_stripe_app(dataset))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def chargebee_server(dataset: Dataset) -> Iterator[BackgroundServer]:
    server = serve_in_thread(create_chargebee_app(dataset))
    yield server
    server.stop()


@pytest.fixture
def stripe_api(stripe_server: BackgroundServer) -> Iterator[Http]:
    """HTTP client of the shared fake Stripe; its faults, stats and deletions are reset afterwards."""
    client = Http(stripe_server.url)
    yield client
    client.close()
    SandboxAdmin(stripe_server.url).reset()


@pytest.fixture
def chargebee_api(chargebee_server: BackgroundServer) -> Iterator[Http]:
    client = Http(chargebee_server.url)
    yield client
    client.close()
    SandboxAdmin(chargebee_server.url).reset()
