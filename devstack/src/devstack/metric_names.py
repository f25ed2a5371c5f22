"""The Prometheus metric names the services define, read from their sources, for the checks that keep
guides, alerting rules and dashboards from naming a metric nobody exposes (tests/docs, tests/deploy),
and that keep every name in the one scheme (docs/operations.md, "Metric names")."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from devstack.paths import repo_root

#: Metrics that come from elsewhere: faststream's middleware, prometheus_client's process, GC and
#: platform collectors (registered in ``contracts.runtime.metrics``), Strimzi's Kafka Exporter,
#: kube-state-metrics, and Prometheus's own ``up`` of each scrape target.
EXTERNAL_PREFIXES: Final = ("faststream_", "process_", "python_", "kafka_", "kube_")
EXTERNAL_NAMES: Final = frozenset({"up"})
#: The owner of what the shared runtime defines: its consumption pipeline, the same in every service.
RUNTIME_OWNER: Final = "consumer"
_DEFINITION: Final = re.compile(r"\b(Counter|Histogram|Gauge|Summary)\(\s*\"([a-z_][a-z0-9_]*)\"")


@dataclass(frozen=True, slots=True)
class MetricDefinition:
    """A metric as its source defines it: its name, its kind and who owns it (the service whose
    package defines it, or the shared runtime's ``RUNTIME_OWNER``)."""

    name: str
    kind: str
    owner: str


def metric_definitions() -> list[MetricDefinition]:
    """Every metric the services' and the shared runtime's sources define."""
    root = repo_root()
    owned = [
        *((source, source.relative_to(root).parts[1]) for source in root.glob("services/*/src/**/*.py")),
        *((source, RUNTIME_OWNER) for source in root.glob("shared/contracts/src/**/*.py")),
    ]
    return [
        MetricDefinition(name, kind, owner)
        for source, owner in sorted(owned)
        for kind, name in _DEFINITION.findall(source.read_text())
    ]


def exposed_metrics() -> set[str]:
    """The metric names the services' and the shared runtime's sources define."""
    return {definition.name for definition in metric_definitions()}


def external(name: str) -> bool:
    """Whether ``name`` is one of the cluster's or the framework's metrics, not ours."""
    return name.startswith(EXTERNAL_PREFIXES) or name in EXTERNAL_NAMES
