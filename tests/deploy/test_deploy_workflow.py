"""The images workflow (.github/workflows/images.yml): actionlint finds nothing, and it builds each
service from deploy/Dockerfile with the arguments the checks expect, scans before it pushes, pushes
with the OCI labels, and never pushes from a pull request."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .deploy_kit import REPO_ROOT, SERVICE_DOCKERFILE, SERVICES, actionlint_command

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "images.yml"


def _workflow(text: str | None = None) -> dict[str, Any]:
    loaded: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text() if text is None else text)
    # YAML 1.1 reads the key `on` as the boolean true.
    return {("on" if key is True else str(key)): value for key, value in loaded.items()}


def _build_args(step: dict[str, Any]) -> dict[str, str]:
    lines = str(step["with"].get("build-args", "")).splitlines()
    return dict(line.strip().split("=", 1) for line in lines if line.strip())


def workflow_problems(workflow: dict[str, Any]) -> list[str]:
    """What the images workflow must do, read from its structure."""
    problems: list[str] = []
    if workflow.get("permissions") != {"contents": "read"}:
        problems.append("the workflow's default permissions are not read-only")
    if "pull_request" not in workflow.get("on", {}):
        problems.append("pull requests do not build and scan the images")
    job = workflow.get("jobs", {}).get("image", {})
    include = job.get("strategy", {}).get("matrix", {}).get("include", [])
    matrix = {entry.get("service"): str(entry.get("port")) for entry in include}
    expected = {name: str(facts.port) for name, facts in SERVICES.items()}
    if matrix != expected:
        problems.append(f"the matrix builds {matrix}, not {expected}")
    steps: list[dict[str, Any]] = job.get("steps", [])
    uses = [str(step.get("uses", "")).split("@")[0] for step in steps]
    builds = [i for i, used in enumerate(uses) if used == "docker/build-push-action"]
    scans = [i for i, used in enumerate(uses) if used == "aquasecurity/trivy-action"]
    pushes = [i for i in builds if steps[i]["with"].get("push") in (True, "true")]
    if not builds:
        problems.append("no docker/build-push-action step")
    if not scans:
        problems.append("no Trivy scan")
    if not pushes:
        problems.append("nothing pushes the image")
    if scans and pushes and min(pushes) < min(scans):
        problems.append("the image is pushed before it is scanned")
    for i in scans:
        scan = steps[i]["with"]
        if str(scan.get("exit-code")) != "1":
            problems.append("the scan does not fail the job on a finding")
        scanned = {steps[b]["with"].get("tags") for b in builds if b < i and b not in pushes}
        if scan.get("image-ref") not in scanned:
            problems.append(f"the scan reads {scan.get('image-ref')}, not an image the job built before it")
    dockerfile = str(SERVICE_DOCKERFILE.relative_to(REPO_ROOT))
    for i in builds:
        step = steps[i]
        args = _build_args(step)
        if step["with"].get("file") != dockerfile or step["with"].get("context") != ".":
            problems.append(f"step {i} does not build {dockerfile} in the repository root")
        if args.get("SERVICE") != "${{ matrix.service }}" or args.get("HTTP_PORT") != "${{ matrix.port }}":
            problems.append(f"step {i} builds without SERVICE and HTTP_PORT from the matrix")
        for arg in ("VERSION", "REVISION", "SOURCE"):
            if not args.get(arg):
                problems.append(f"step {i} leaves the image's {arg} label at its default")
        if "steps.meta.outputs.labels" not in str(step["with"].get("labels", "")):
            problems.append(f"step {i} does not label the image with the metadata action's OCI labels")
    for i in pushes:
        condition = str(steps[i].get("if", ""))
        if "github.event_name != 'pull_request'" not in condition:
            problems.append("a pull request would push an image")
    return problems


def test_the_workflow_passes_actionlint() -> None:
    result = subprocess.run(
        [*actionlint_command(), "-no-color", str(WORKFLOW)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "images.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(WORKFLOW.read_text().replace("runs-on: ubuntu-24.04", "runs_on: ubuntu-24.04", 1))

    result = subprocess.run(
        [*actionlint_command(), "-no-color", str(broken)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert result.returncode != 0
    assert "runs_on" in result.stdout


def test_the_workflow_builds_scans_and_pushes_each_service() -> None:
    assert workflow_problems(_workflow()) == []


def test_the_release_pins_the_prod_overlay_to_what_was_pushed() -> None:
    workflow = _workflow()
    pin = workflow["jobs"]["pin-prod"]
    script = "\n".join(str(step.get("run", "")) for step in pin["steps"])

    assert pin["needs"] == "image"
    assert "refs/tags/v" in pin["if"]
    assert "deploy/k8s/overlays/prod/kustomization.yaml" in script
    assert ".digest" in script
    assert ".newTag" in script
    assert set(SERVICES) <= set(re.findall(r"\w+", script))


def _drop_step(workflow: dict[str, Any], uses: str) -> None:
    steps = workflow["jobs"]["image"]["steps"]
    steps[:] = [s for s in steps if not str(s.get("uses", "")).startswith(uses)]


def _index_of_push(workflow: dict[str, Any]) -> int:
    return next(i for i, s in enumerate(workflow["jobs"]["image"]["steps"]) if s.get("id") == "push")


def _push_step(workflow: dict[str, Any]) -> dict[str, Any]:
    step: dict[str, Any] = next(s for s in workflow["jobs"]["image"]["steps"] if s.get("id") == "push")
    return step


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda w: _drop_step(w, "aquasecurity/trivy-action"), "no Trivy scan"),
        (lambda w: w["jobs"]["image"]["strategy"]["matrix"]["include"].pop(), "the matrix builds"),
        (lambda w: _push_step(w).pop("if"), "a pull request would push"),
        (lambda w: _push_step(w)["with"].update({"file": "services/importer/Dockerfile"}), "does not build"),
        (lambda w: _push_step(w)["with"].update({"labels": ""}), "OCI labels"),
        (
            lambda w: _push_step(w)["with"].update({"build-args": "SERVICE=importer\nHTTP_PORT=8001"}),
            "without SERVICE and HTTP_PORT from the matrix",
        ),
        (
            lambda w: w["jobs"]["image"]["steps"].insert(
                1, w["jobs"]["image"]["steps"].pop(_index_of_push(w))
            ),
            "pushed before it is scanned",
        ),
        (lambda w: w.update({"permissions": {"contents": "write"}}), "read-only"),
        (
            lambda w: next(s for s in w["jobs"]["image"]["steps"] if s.get("name") == "Scan")["with"].update(
                {"image-ref": "alpine:3"}
            ),
            "not an image the job built before it",
        ),
    ],
)
def test_a_workflow_breaking_the_rules_is_caught(edit: Any, expected: str) -> None:
    workflow = _workflow()
    edit(workflow)

    problems = workflow_problems(workflow)

    assert any(expected in problem for problem in problems), problems
