"""Every metric the services define follows the one naming scheme of docs/operations.md
("Metric names"): ``<owner>_<what>_<unit or total>``."""

import re

from devstack.metric_names import MetricDefinition, metric_definitions

_SNAKE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+")
# Base units only (Prometheus's conventions): seconds, not milliseconds or minutes; bytes, not KiB.
_NON_BASE_UNITS = re.compile(r"_(ms|milliseconds|microseconds|minutes|hours|days|kb|mb|kib|mib)(_|$)")
# Left to the client library, which adds them to a histogram's or counter's samples.
_RESERVED = ("_bucket", "_count", "_sum", "_created", "_info")


def naming_problems(definition: MetricDefinition) -> list[str]:
    name, kind = definition.name, definition.kind
    problems: list[str] = []
    if not _SNAKE.fullmatch(name):
        problems.append(f"{name}: not lower snake_case")
    if not name.startswith(f"{definition.owner}_"):
        problems.append(f"{name}: does not start with its owner, {definition.owner}_")
    if kind == "Counter" and not name.endswith("_total"):
        problems.append(f"{name}: a counter's name ends in _total")
    if kind != "Counter" and name.endswith("_total"):
        problems.append(f"{name}: only a counter's name ends in _total")
    if kind in {"Histogram", "Summary"} and not name.endswith(("_seconds", "_bytes")):
        problems.append(f"{name}: a {kind.lower()} observes seconds or bytes and says which")
    if _NON_BASE_UNITS.search(name):
        problems.append(f"{name}: not in a base unit (seconds, bytes)")
    if name.endswith(_RESERVED):
        problems.append(f"{name}: ends in a suffix the client library adds")
    return problems


def test_every_metric_the_services_define_follows_the_naming_scheme() -> None:
    definitions = metric_definitions()

    assert {d.owner for d in definitions} == {"connector", "importer", "notifier", "consumer"}
    assert [problem for d in definitions for problem in naming_problems(d)] == []


def test_no_two_definitions_share_a_name() -> None:
    names = [d.name for d in metric_definitions()]

    assert sorted(name for name in set(names) if names.count(name) > 1) == []


def test_a_name_out_of_the_scheme_is_caught() -> None:
    cases = {
        MetricDefinition("processor_requests_total", "Counter", "importer"): "does not start with",
        MetricDefinition("importer_pages", "Counter", "importer"): "ends in _total",
        MetricDefinition("importer_lag_total", "Gauge", "importer"): "only a counter",
        MetricDefinition("importer_page_duration_ms", "Histogram", "importer"): "seconds or bytes",
        MetricDefinition("importer_wait_minutes", "Gauge", "importer"): "base unit",
        MetricDefinition("notifier_Emails_total", "Counter", "notifier"): "snake_case",
        MetricDefinition("consumer_retries_count", "Gauge", "consumer"): "client library adds",
    }
    for definition, expected in cases.items():
        assert any(expected in problem for problem in naming_problems(definition)), definition
