"""The generated OpenAPI document declares every answer, and fuzzing the API from it finds no 500."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from connector_fakes import build_world
from connector_unit_kit import app_over, token_for
from hypothesis import HealthCheck, settings
from schemathesis.checks import ignored_auth, positive_data_acceptance

WORLD = build_world()
APP = app_over(WORLD)

schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


def openapi() -> dict[str, Any]:
    document: dict[str, Any] = APP.openapi()
    return document


def test_every_account_route_declares_its_errors_in_the_error_shape() -> None:
    paths = openapi()["paths"]
    account_operations = [
        (path, method, operation)
        for path, methods in paths.items()
        if path.startswith("/v1/accounts/")
        for method, operation in methods.items()
    ]
    assert len(account_operations) == 8
    for path, method, operation in account_operations:
        for status in ("401", "403", "422"):
            content = operation["responses"][status]["content"]["application/json"]["schema"]
            assert content == {"$ref": "#/components/schemas/ErrorBody"}, (path, method, status)
        assert operation["security"] == [{"AccountToken": []}]
    stripe = paths["/v1/accounts/{account_id}/connections/stripe"]["post"]["responses"]
    assert {"200", "409", "429", "503"} <= set(stripe)
    assert "Retry-After" in stripe["429"]["headers"]
    assert "Retry-After" in stripe["503"]["headers"]
    assert "201" in paths["/v1/accounts/{account_id}/connections/chargebee"]["post"]["responses"]
    assert "204" in paths["/v1/accounts/{account_id}/connection"]["delete"]["responses"]
    assert "202" in paths["/v1/accounts/{account_id}/imports"]["post"]["responses"]
    assert {"303", "400"} <= set(paths["/v1/oauth/stripe/callback"]["get"]["responses"])


def test_secrets_are_write_only_in_the_document() -> None:
    schemas = openapi()["components"]["schemas"]
    for name in ("StripeConnectBody", "ChargebeeConnectBody"):
        api_key = schemas[name]["properties"]["api_key"]
        assert api_key["writeOnly"] is True
        assert api_key["format"] == "password"


def test_the_operational_routes_stay_out_of_the_document() -> None:
    assert not {"/livez", "/readyz", "/metrics"} & set(openapi()["paths"])


def test_the_document_is_generated_without_a_runtime() -> None:
    from connector.bootstrap import build
    from connector_unit_kit import unit_settings

    assert build(unit_settings()).openapi()["info"]["title"] == "Connector"


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@pytest.mark.filterwarnings("ignore")
def test_fuzzing_finds_no_server_error_and_answers_as_documented(case: schemathesis.Case[Any]) -> None:
    account_id = case.path_parameters.get("account_id") if case.path_parameters else None
    if isinstance(account_id, str) and account_id and not _probes_authorization(case):
        # A token for the drawn account, so that fuzzing gets past authentication into the use cases.
        case.headers["Authorization"] = f"Bearer {token_for(account_id)}"
    # A schema cannot say which keys a processor accepts: a well-formed key that the (fake) processor
    # refuses is rightly 422, so "schema-valid data must be accepted" does not apply here.
    # The token is set on the case itself, so schemathesis's own "invalid auth is refused" replay
    # would send it along; the routes' token checks are tested case by case instead.
    case.call_and_validate(excluded_checks=[positive_data_acceptance, ignored_auth])


def _probes_authorization(case: schemathesis.Case[Any]) -> bool:
    """Whether schemathesis drew this case to see what happens without (or with a bad) token."""
    data = getattr(getattr(case.meta, "phase", None), "data", None)
    return str(getattr(data, "parameter", "") or "").lower() == "authorization"
