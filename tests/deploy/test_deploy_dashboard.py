"""The Grafana dashboard (deploy/k8s/overlays/prod/grafana/): it queries only metrics the services
(or the cluster's exporters) expose, covers what the operations guide says to watch, and ships as
the ConfigMap Grafana's sidecar loads."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .deploy_kit import K8S_DIR, Manifest, by_kind, promql_metrics, unexposed_metrics

DASHBOARD = K8S_DIR / "overlays" / "prod" / "grafana" / "billing-import.json"


def _dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return document


def _queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query of every panel, rows' nested panels included."""
    found: list[tuple[str, str]] = []
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            found += [(inner["title"], target["expr"]) for target in inner.get("targets", [])]
    return found


def test_every_query_reads_only_metrics_that_are_exposed() -> None:
    queries = _queries(_dashboard())

    assert queries
    assert [(title, unexposed_metrics(expr)) for title, expr in queries if unexposed_metrics(expr)] == []


def test_a_query_of_a_metric_nobody_exposes_is_caught() -> None:
    assert unexposed_metrics("sum(rate(importer_imports_failed_total[5m])) / sum(rate(up[5m]))") == [
        "importer_imports_failed_total"
    ]
    assert unexposed_metrics(
        "histogram_quantile(0.9, sum by (le) (rate(importer_page_seconds_bucket[5m])))"
    ) == ["importer_page_seconds_bucket"]


def test_the_promql_reader_finds_the_series_and_nothing_else() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, route) "
        '(rate(a_seconds_bucket{route=~"/v1/{id}"}[$__rate_interval]))) > 1'
        " and on (job) max without (pod) (b_total offset 5m) or vector(0) unless c"
    )

    assert promql_metrics(expr) == {"a_seconds_bucket", "b_total", "c"}


@pytest.mark.parametrize(
    "metric",
    [
        "up",  # a service absent
        "importer_imports_total",  # imports
        "importer_import_duration_seconds_bucket",
        "importer_sync_lag_seconds",  # sync lag
        "kafka_consumergroup_lag",  # consumer lag
        "consumer_messages_dead_lettered_total",  # DLQ
        "importer_processor_requests_total",  # 429s
        "connector_http_request_duration_seconds_bucket",  # HTTP
        "notifier_emails_sent_total",  # emails
        "notifier_emails_failed_total",
    ],
)
def test_the_dashboard_shows_what_the_alerts_watch(metric: str) -> None:
    read = {name for _, expr in _queries(_dashboard()) for name in promql_metrics(expr)}

    assert metric in read


def test_the_panels_are_well_formed() -> None:
    dashboard = _dashboard()
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]

    assert dashboard["uid"] == "billing-import"
    assert len(ids) == len(set(ids))
    variables = {variable["name"] for variable in dashboard["templating"]["list"]}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"].strip("${}") in variables, panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
    # No two panels overlap on the grid.
    cells = [
        (x, y)
        for p in panels
        for x in range(p["gridPos"]["x"], p["gridPos"]["x"] + p["gridPos"]["w"])
        for y in range(p["gridPos"]["y"], p["gridPos"]["y"] + p["gridPos"]["h"])
    ]
    assert len(cells) == len(set(cells))


def test_prod_ships_the_dashboard_as_a_configmap_for_grafana(
    rendered_overlays: dict[str, list[Manifest]],
) -> None:
    maps = [
        m
        for m in by_kind(rendered_overlays["prod"], "ConfigMap")
        if "grafana_dashboard" in m["metadata"].get("labels", {})
    ]

    assert [m["metadata"]["name"] for m in maps] == ["billing-import-dashboard"]
    assert json.loads(maps[0]["data"]["billing-import.json"]) == _dashboard()
