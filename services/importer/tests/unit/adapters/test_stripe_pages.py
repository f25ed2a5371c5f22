"""Stripe list pages read field by field normalise exactly as pages parsed whole.

Every page the fake Stripe serves of the three resources read this way is normalised both ways;
then each field of sample objects (and of their nested items, prices and parents) is set to values
of every JSON type, so that a field the normaliser reads but the schemas lack shows as a difference.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import orjson
import pytest
from contracts.events import Processor
from contracts.records import CanonicalRecord
from importer.adapters.stripe_pages import page_decoder
from importer.domain.normalize import MalformedObject, normalizer_for
from importer.domain.source import NormalizationContext
from sandbox.data import generate_dataset
from sandbox.fake_stripe import create_stripe_app
from sandbox.server import BackgroundServer

from sandbox import config as cfg

RESOURCES = ("customers", "subscriptions", "invoices")
EXTRA_PARAMS: dict[str, list[tuple[str, str]]] = {
    "subscriptions": [("status", "all"), ("expand[]", "data.discounts")],
}
#: Values of each JSON type a field is set to in turn (and the field left out).
VALUES: tuple[Any, ...] = (
    None,
    "x",
    "usd",
    7,
    2.5,
    -3,
    1e300,
    True,
    False,
    {},
    {"id": "o_1"},
    [],
    ["a"],
    [{}],
)
MISSING = object()


def normalized(resource: str, raw: Mapping[str, Any]) -> list[CanonicalRecord] | str:
    try:
        return list(normalizer_for(Processor.STRIPE).normalize(resource, raw, NormalizationContext("acct")))
    except MalformedObject as error:
        return f"malformed: {error}"
    except Exception as error:  # e.g. an object as an interval (TypeError): raised either way
        return f"{type(error).__name__}: {error}"


def both_ways(
    resource: str, body: bytes
) -> list[tuple[list[CanonicalRecord] | str, list[CanonicalRecord] | str]]:
    """Each object's records from the whole parse and from the decoder (none: the decoder left the
    page to the whole parse)."""
    decode = page_decoder(resource)
    assert decode is not None
    trimmed = decode(body)
    if trimmed is None:
        return []
    try:
        whole = orjson.loads(body)
    except orjson.JSONDecodeError:  # as the client reads it (``processor_http._json_object``)
        whole = json.loads(body)
    assert trimmed["has_more"] == whole.get("has_more")
    assert len(trimmed["data"]) == len(whole["data"])
    return [
        (normalized(resource, full), normalized(resource, part))
        for full, part in zip(whole["data"], trimmed["data"], strict=True)
    ]


@pytest.fixture(scope="module")
def served_pages() -> Iterator[dict[str, list[bytes]]]:
    dataset = generate_dataset(customers=300, shared_created_ratio=0.2)
    with BackgroundServer(create_stripe_app(dataset)) as stripe:
        pages: dict[str, list[bytes]] = {}
        with httpx.Client(headers={"Authorization": f"Bearer {cfg.SAMPLE_STRIPE_KEY}"}) as client:
            for resource in RESOURCES:
                pages[resource] = []
                after: str | None = None
                while True:
                    params = [("limit", "100"), *EXTRA_PARAMS.get(resource, [])]
                    if after is not None:
                        params.append(("starting_after", after))
                    response = client.get(f"{stripe.url}/v1/{resource}", params=tuple(params))
                    response.raise_for_status()
                    pages[resource].append(response.content)
                    body = response.json()
                    if not body["has_more"]:
                        break
                    after = body["data"][-1]["id"]
        yield pages


@pytest.mark.parametrize("resource", RESOURCES)
def test_every_served_object_normalises_as_from_the_whole_page(
    served_pages: dict[str, list[bytes]], resource: str
) -> None:
    compared = 0
    for body in served_pages[resource]:
        pairs = both_ways(resource, body)
        assert pairs, "the fake's pages fit the schemas"
        for whole, trimmed in pairs:
            assert trimmed == whole
            compared += 1
    assert compared > 250


def _paths(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Every field of an object and of the objects nested in it (lists: their first element)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield (*path, key)
            yield from _paths(inner, (*path, key))
    elif isinstance(value, list) and value:
        yield from _paths(value[0], (*path, 0))


def _with(raw: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(raw)
    parent: Any = changed
    for step in path[:-1]:
        parent = parent[step]
    if value is MISSING:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return changed


@pytest.mark.parametrize("resource", RESOURCES)
def test_any_field_of_any_type_normalises_as_from_the_whole_page(
    served_pages: dict[str, list[bytes]], resource: str
) -> None:
    # Samples with what varies most: discounts, cancellation details, a parent, several items.
    objects: list[dict[str, Any]] = [
        obj for body in served_pages[resource] for obj in orjson.loads(body)["data"]
    ]
    samples = sorted(objects, key=lambda obj: -len(orjson.dumps(obj)))[:3] + objects[:2]
    fitted = 0
    for sample in samples:
        for path in _paths(sample):
            for value in (*VALUES, MISSING):
                body = json.dumps(
                    {"object": "list", "data": [_with(sample, path, value)], "has_more": False}
                ).encode()
                for whole, trimmed in both_ways(resource, body):
                    assert trimmed == whole, (path, value)
                    fitted += 1
    assert fitted > 100


def test_an_amount_beyond_64_bits_is_out_of_range_either_way(served_pages: dict[str, list[bytes]]) -> None:
    # orjson reads an integer beyond 64 bits as a float, msgspec exactly: either is out of range.
    invoice = orjson.loads(served_pages["invoices"][0])["data"][0]
    body = json.dumps({"data": [{**invoice, "total": 10**20}], "has_more": False}).encode()
    [(whole, trimmed)] = both_ways("invoices", body)
    assert trimmed == whole
    assert "out of range" in str(whole)


def test_a_page_not_of_the_schema_s_shape_is_left_to_the_whole_parse() -> None:
    decode = page_decoder("subscriptions")
    assert decode is not None
    assert decode(b'{"data": [{"id": "sub_1", "items": "not an object"}], "has_more": false}') is None
    assert decode(b'{"data": [null], "has_more": false}') is None
    assert decode(b"[1, 2]") is None
    assert decode(b'{"data": [{"id": NaN}]}') is None
    assert page_decoder("products") is None  # small resources: parsed whole
