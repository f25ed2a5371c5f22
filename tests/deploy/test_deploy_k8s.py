"""The Kubernetes manifests: each overlay builds, validates against its schemas and keeps the rules."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from .deploy_kit import (
    CRD_SCHEMAS,
    K8S_DIR,
    OVERLAYS,
    PAGE_REQUESTS,
    RUNBOOK_BASE,
    SCHEMAS_DIR,
    SERVICES,
    Manifest,
    by_kind,
    k8s_problems,
    kafka_access,
    kustomize_build,
    markdown_anchors,
    release_image_problems,
    schema_problems,
)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_overlay_validates_against_kubernetes_and_crd_schemas(
    rendered_overlays: dict[str, list[Manifest]], overlay: str
) -> None:
    manifests = rendered_overlays[overlay]

    assert schema_problems(manifests) == []
    kinds = {m["kind"] for m in manifests}
    assert {"Deployment", "KafkaTopic", "KafkaUser", "ScaledObject", "NetworkPolicy"} <= kinds
    if overlay == "prod":
        assert {"PrometheusRule", "ServiceMonitor"} <= kinds


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_overlay_keeps_the_deployment_rules(
    rendered_overlays: dict[str, list[Manifest]], overlay: str
) -> None:
    assert k8s_problems(rendered_overlays[overlay]) == []


def test_the_overlays_differ_where_they_should(rendered_overlays: dict[str, list[Manifest]]) -> None:
    def replicas(overlay: str) -> dict[str, int]:
        found = {
            d["metadata"]["name"]: d["spec"].get("replicas")
            for d in by_kind(rendered_overlays[overlay], "Deployment")
        }
        scaled = next(by_kind(rendered_overlays[overlay], "ScaledObject"))
        found["importer"] = scaled["spec"]["minReplicaCount"]
        return found

    assert set(replicas("dev").values()) == {1}
    assert all(count >= 2 for count in replicas("prod").values())
    prod_budgets = {
        p["metadata"]["name"]: p["spec"] for p in by_kind(rendered_overlays["prod"], "PodDisruptionBudget")
    }
    assert all("minAvailable" in spec and "maxUnavailable" not in spec for spec in prod_budgets.values())
    for overlay in OVERLAYS:
        images = {
            c["image"]
            for d in by_kind(rendered_overlays[overlay], "Deployment")
            for c in d["spec"]["template"]["spec"]["containers"]
        }
        assert len(images) == len(SERVICES)
        assert all(image.startswith("ghcr.io/billing-import/") for image in images)


def _edit(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    return next(m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name)


def _alert(manifests: list[Manifest], name: str) -> Manifest:
    rules = _edit(manifests, "PrometheusRule", "billing-import")["spec"]["groups"]
    alert: Manifest = next(r for group in rules for r in group["rules"] if r.get("alert") == name)
    return alert


def _container(manifests: list[Manifest], name: str) -> Manifest:
    container: Manifest = _edit(manifests, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
    return container


SCHEMA_BREAKS: list[tuple[str, Callable[[list[Manifest]], object], str]] = [
    (
        "unknown Deployment field",
        lambda m: _container(m, "connector").update({"livenessProbes": {}}),
        "livenessProbes",
    ),
    (
        "wrong probe port type",
        lambda m: _container(m, "notifier")["readinessProbe"]["httpGet"].update({"port": [8002]}),
        "readinessProbe",
    ),
    (
        "unknown KafkaTopic field",
        lambda m: _edit(m, "KafkaTopic", "imports.v1")["spec"].update({"partition": 6}),
        "partition",
    ),
    (
        "partitions as a string",
        lambda m: _edit(m, "KafkaTopic", "imports.v1")["spec"].update({"partitions": "six"}),
        "partitions",
    ),
    (
        "unknown ACL operation",
        lambda m: _edit(m, "KafkaUser", "notifier")["spec"]["authorization"]["acls"][0].update(
            {"operations": ["Reed"]}
        ),
        "Reed",
    ),
    (
        "ScaledObject without triggers",
        lambda m: _edit(m, "ScaledObject", "importer")["spec"].pop("triggers"),
        "triggers",
    ),
    (
        "alert with both alert and record",
        lambda m: _edit(m, "PrometheusRule", "billing-import")["spec"]["groups"][0]["rules"][0].update(
            {"record": "billing:x"}
        ),
        "groups/0/rules/0",
    ),
    (
        "alert with an unreadable duration",
        lambda m: _edit(m, "PrometheusRule", "billing-import")["spec"]["groups"][0]["rules"][0].update(
            {"for": "fifteen minutes"}
        ),
        "fifteen minutes",
    ),
    (
        "ServiceMonitor endpoint field misspelt",
        lambda m: _edit(m, "ServiceMonitor", "billing-import")["spec"]["endpoints"][0].update({"paht": "/x"}),
        "paht",
    ),
    (
        "ServiceMonitor with an unreadable interval",
        lambda m: _edit(m, "ServiceMonitor", "billing-import")["spec"]["endpoints"][0].update(
            {"interval": "half a minute"}
        ),
        "half a minute",
    ),
    (
        "a kind nobody knows",
        lambda m: m.append({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}),
        "no schema",
    ),
]


@pytest.mark.parametrize(
    ("edit", "expected"), [b[1:] for b in SCHEMA_BREAKS], ids=[b[0] for b in SCHEMA_BREAKS]
)
def test_a_manifest_breaking_its_schema_is_caught(
    rendered_overlays: dict[str, list[Manifest]], edit: Callable[[list[Manifest]], object], expected: str
) -> None:
    manifests = copy.deepcopy(rendered_overlays["prod"])
    edit(manifests)

    problems = schema_problems(manifests)

    assert any(expected in p for p in problems), problems


RULE_BREAKS: list[tuple[str, Callable[[list[Manifest]], object], str]] = [
    (
        "readiness probe removed",
        lambda m: _container(m, "importer").pop("readinessProbe"),
        "importer/importer: readinessProbe",
    ),
    (
        "liveness probe on /readyz",
        lambda m: _container(m, "connector")["livenessProbe"]["httpGet"].update({"path": "/readyz"}),
        "livenessProbe",
    ),
    (
        "no memory limit",
        lambda m: _container(m, "notifier")["resources"]["limits"].pop("memory"),
        "no limits.memory",
    ),
    (
        "writable root filesystem",
        lambda m: _container(m, "connector")["securityContext"].update({"readOnlyRootFilesystem": False}),
        "readOnlyRootFilesystem",
    ),
    (
        "capabilities kept",
        lambda m: _container(m, "connector")["securityContext"]["capabilities"].update({"drop": []}),
        "drop ALL",
    ),
    (
        "secret as a literal",
        lambda m: _container(m, "importer")["env"].append({"name": "API_JWT_SECRET", "value": "s3cret"}),
        "literal",
    ),
    (
        "unpinned image",
        lambda m: _container(m, "notifier").update({"image": "ghcr.io/billing-import/notifier:latest"}),
        "pinned",
    ),
    (
        "public topic missing",
        lambda m: m.remove(_edit(m, "KafkaTopic", "billing.coupons.v1")),
        "billing.coupons.v1 has no KafkaTopic",
    ),
    (
        "dead-letter topic missing",
        lambda m: m.remove(_edit(m, "KafkaTopic", "imports.v1.dlq")),
        "imports.v1.dlq has no KafkaTopic",
    ),
    (
        "billing topic not compacted",
        lambda m: _edit(m, "KafkaTopic", "billing.invoices.v1")["spec"]["config"].update(
            {"cleanup.policy": "delete"}
        ),
        "must be compacted",
    ),
    (
        "more importers than partitions",
        lambda m: _edit(m, "ScaledObject", "importer")["spec"].update({"maxReplicaCount": 13}),
        "exceeds the 12",
    ),
    (
        "fewer partitions than importers",
        lambda m: _edit(m, "KafkaTopic", PAGE_REQUESTS)["spec"].update({"partitions": 8}),
        "exceeds the 8",
    ),
    (
        "lag of the wrong group",
        lambda m: _edit(m, "ScaledObject", "importer")["spec"]["triggers"][0]["metadata"].update(
            {"consumerGroup": "connector"}
        ),
        "does not scale on the lag",
    ),
    (
        "committed Secret",
        lambda m: m.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "oops"},
                "data": {"API_JWT_SECRET": "czNjcmV0"},
            }
        ),
        "Secret oops carries committed values",
    ),
    (
        "PDB that blocks drains",
        lambda m: _edit(m, "PodDisruptionBudget", "connector")["spec"].update({"minAvailable": 3}),
        "blocks drains",
    ),
    ("no default deny", lambda m: m.remove(_edit(m, "NetworkPolicy", "default-deny-all")), "default-deny"),
    ("no DNS", lambda m: m.remove(_edit(m, "NetworkPolicy", "allow-dns-egress")), "DNS egress"),
    (
        "no way to Kafka",
        lambda m: m.remove(_edit(m, "NetworkPolicy", "allow-kafka-and-mongodb-egress")),
        "may not reach Kafka",
    ),
    (
        "ACL lost",
        lambda m: _edit(m, "KafkaUser", "notifier")["spec"]["authorization"]["acls"].pop(0),
        "KafkaUser notifier lacks Read on topic imports.v1",
    ),
    (
        "alert on a metric nobody exposes",
        lambda m: _edit(m, "PrometheusRule", "billing-import")["spec"]["groups"][0]["rules"][0].update(
            {"expr": "sum(rate(importer_imports_failed_total[1h])) > 0"}
        ),
        "reads importer_imports_failed_total, which no service exposes",
    ),
    (
        "alert without a severity",
        lambda m: _edit(m, "PrometheusRule", "billing-import")["spec"]["groups"][1]["rules"][0]["labels"].pop(
            "severity"
        ),
        "has no severity label",
    ),
    (
        "alert without a runbook",
        lambda m: _alert(m, "BillingImportsSlow")["annotations"].pop("runbook_url"),
        "alert BillingImportsSlow has no runbook_url",
    ),
    (
        "runbook_url to a heading the guide does not have",
        lambda m: _alert(m, "BillingConsumerLag")["annotations"].update(
            {"runbook_url": RUNBOOK_BASE + "consumer-lag"}
        ),
        "names no heading of docs/operations.md",
    ),
    (
        "runbook_url elsewhere",
        lambda m: _alert(m, "BillingSyncStalled")["annotations"].update(
            {"runbook_url": "https://wiki.example.com/sync"}
        ),
        "is not in https://github.com/billing-import/billing-import/blob/main/docs/operations.md#",
    ),
    (
        "no rule for a service being absent",
        lambda m: _alert(m, "BillingNotifierAbsent").update({"expr": 'absent(up{job="notifer"} == 1)'}),
        "no alert fires when notifier is absent",
    ),
    (
        "a resource outside the namespace",
        lambda m: _edit(m, "PrometheusRule", "billing-import")["metadata"].pop("namespace"),
        "PrometheusRule billing-import is not in namespace billing-import",
    ),
    (
        "no ServiceMonitor",
        lambda m: m.remove(_edit(m, "ServiceMonitor", "billing-import")),
        "no ServiceMonitor scrapes connector's /metrics",
    ),
    (
        "ServiceMonitor leaving a service out",
        lambda m: _edit(m, "ServiceMonitor", "billing-import")["spec"]["selector"]["matchExpressions"][
            0
        ].update({"values": ["connector", "importer"]}),
        "no ServiceMonitor scrapes notifier's /metrics",
    ),
    (
        "ServiceMonitor on a port the Services lack",
        lambda m: _edit(m, "ServiceMonitor", "billing-import")["spec"]["endpoints"][0].update(
            {"port": "metrics"}
        ),
        "importer has no port 'metrics'",
    ),
    (
        "ServiceMonitor whose job is not the service's name (the absent alerts would never see it)",
        lambda m: _edit(m, "ServiceMonitor", "billing-import")["spec"].update(
            {"jobLabel": "app.kubernetes.io/part-of"}
        ),
        "scrapes importer as job 'billing-import', not 'importer'",
    ),
    (
        "a consumer of imports.v1 besides the notifier, without its Read (the connector's, once missed)",
        lambda m: _edit(m, "KafkaUser", "connector")["spec"]["authorization"]["acls"].__setitem__(
            slice(None),
            [
                acl
                for acl in _edit(m, "KafkaUser", "connector")["spec"]["authorization"]["acls"]
                if not acl["resource"]["name"].startswith("imports.v1")
            ],
        ),
        "KafkaUser connector lacks Read on topic imports.v1",
    ),
    (
        "a grant the service does not use",
        lambda m: _edit(m, "KafkaUser", "notifier")["spec"]["authorization"]["acls"].append(
            {
                "resource": {"type": "topic", "name": "billing.invoices.v1", "patternType": "literal"},
                "operations": ["Read"],
            }
        ),
        "KafkaUser notifier grants Read on topic billing.invoices.v1, unused",
    ),
    (
        "group ACL lost",
        lambda m: _edit(m, "KafkaUser", "importer")["spec"]["authorization"]["acls"].pop(),
        "Read on group importer-sync",
    ),
]


@pytest.mark.parametrize(("edit", "expected"), [b[1:] for b in RULE_BREAKS], ids=[b[0] for b in RULE_BREAKS])
def test_a_manifest_breaking_a_rule_is_caught(
    rendered_overlays: dict[str, list[Manifest]], edit: Callable[[list[Manifest]], object], expected: str
) -> None:
    manifests = copy.deepcopy(rendered_overlays["prod"])
    edit(manifests)

    problems = k8s_problems(manifests)

    assert any(expected in p for p in problems), problems


def test_prod_runs_release_images_pinned_by_digest(rendered_overlays: dict[str, list[Manifest]]) -> None:
    assert release_image_problems(rendered_overlays["prod"]) == []
    # dev follows the moving dev tag on purpose
    assert len(release_image_problems(rendered_overlays["dev"])) == len(SERVICES)


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/billing-import/importer:0.1.0",
        "ghcr.io/billing-import/importer@sha256:" + "a" * 64,
        "ghcr.io/billing-import/importer:dev@sha256:" + "a" * 64,
        "ghcr.io/billing-import/importer:0.1.0@sha256:abc",
    ],
)
def test_an_image_not_pinned_to_a_release_is_caught(
    rendered_overlays: dict[str, list[Manifest]], image: str
) -> None:
    manifests = copy.deepcopy(rendered_overlays["prod"])
    _container(manifests, "importer")["image"] = image

    assert release_image_problems(manifests) == [
        f"importer/importer: image {image} is not a release tag pinned by digest"
    ]


def test_a_broken_overlay_on_disk_is_caught_end_to_end(tmp_path: Path) -> None:
    """The whole path, kustomize included: a prod overlay that lets the importer outgrow its partitions."""
    shutil.copytree(K8S_DIR, tmp_path / "k8s")
    kustomization = tmp_path / "k8s" / "overlays" / "prod" / "kustomization.yaml"
    document = yaml.safe_load(kustomization.read_text())
    for patch in document["patches"]:
        if "ScaledObject" in str(patch.get("target", {})):
            patch["patch"] = patch["patch"].replace("value: 12", "value: 24")
    kustomization.write_text(yaml.safe_dump(document))

    problems = k8s_problems(kustomize_build(tmp_path / "k8s" / "overlays" / "prod"))

    assert any("maxReplicaCount 24 exceeds the 12 partitions" in p for p in problems), problems


def test_every_vendored_crd_schema_is_a_valid_json_schema_and_in_use() -> None:
    files = {path.name for path in SCHEMAS_DIR.glob("*.json")}

    assert files == set(CRD_SCHEMAS.values())
    for name in files:
        jsonschema.Draft202012Validator.check_schema(json.loads((SCHEMAS_DIR / name).read_text()))


def test_each_service_s_kafka_access_is_read_from_its_asyncapi_document() -> None:
    connector = kafka_access("connector")
    assert connector.consumes == ("connector.connection-reports.v1", "imports.v1", "onboarding.requests.v1")
    assert connector.groups == ("connector-connection-reports", "connector-imports", "connector-onboarding")
    assert ("topic", "imports.v1.dlq", "Write") in connector.acls()
    importer = kafka_access("importer")
    assert "importer.page-requests.v1" in importer.consumes
    assert "importer.page-requests.v1" in importer.produces
    assert importer.groups == (
        "importer-connections",
        "importer-offers",
        "importer-page-requests",
        "importer-sync",
        "importer-sync-events",
    )
    assert kafka_access("notifier").groups == ("notifier-connections", "notifier-imports")


def test_the_anchors_of_the_guide_s_headings_are_github_s() -> None:
    text = "# Operations guide\n## Local stack (Docker Compose)\n```sh\n# not a heading\n```\n"
    text += (
        "### Many 429s from Stripe or Chargebee\n### `stripe_grant.x` keeps appearing\n## Images\n## Images\n"
    )

    assert markdown_anchors(text) == {
        "operations-guide",
        "local-stack-docker-compose",
        "many-429s-from-stripe-or-chargebee",
        "stripe_grantx-keeps-appearing",
        "images",
        "images-1",
    }
