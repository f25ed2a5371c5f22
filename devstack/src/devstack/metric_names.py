"""The Prometheus metric names the services define, read from their sources, for the checks that keep
guides and alerting rules from naming a metric nobody exposes (tests/docs, tests/deploy)."""

from __future__ import annotations

import re
from typing import Final

from devstack.paths import repo_root

#: Metrics that come from elsewhere: faststream's middleware, prometheus_client's process, GC and
#: platform collectors (registered in ``contracts.runtime.metrics``), Strimzi's Kafka Exporter,
#: kube-state-metrics.
EXTERNAL_PREFIXES: Final = ("faststream_", "process_", "python_", "kafka_", "kube_")
_DEFINITION: Final = re.compile(r"\b(?:Counter|Histogram|Gauge|Summary)\(\s*\"([a-z_][a-z0-9_]*)\"")


def exposed_metrics() -> set[str]:
    """The metric names the services' and the shared runtime's sources define."""
    root = repo_root()
    sources = [*root.glob("services/*/src/**/*.py"), *root.glob("shared/contracts/src/**/*.py")]
    return {name for source in sources for name in _DEFINITION.findall(source.read_text())}


def external(name: str) -> bool:
    """Whether ``name`` is one of the cluster's or the framework's metrics, not ours."""
    return name.startswith(EXTERNAL_PREFIXES)
