"""The deployment recipes under deploy/ (issue #31, docs/deploy.md), checked the way this machine
allows: the systemd units by ``systemd-analyze verify``, the compose file against the Compose
Specification's JSON Schema (check-jsonschema's copy), the Kubernetes manifest against the
Kubernetes API's schemas (kubernetes-validate), the Dockerfile by reading it; in all of them,
every ``sectra`` command line must parse with the real CLI parser. A missing checker skips
loudly here and fails under ``CI=true``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from sectra_client.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
K8S_VERSION = "1.30"


def _need(what: str, reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing under CI=true: {reason}")
    pytest.skip(f"SKIPPED LOUDLY: {what} is missing ({reason})")


def _parses(argv: list[str]) -> None:
    """``argv`` (``sectra ...``) parses with the real CLI parser: every flag exists, every value fits."""
    assert Path(argv[0]).name == "sectra", argv
    try:
        build_parser().parse_args(argv[1:])
    except SystemExit as exc:  # argparse's way of refusing
        pytest.fail(f"{shlex.join(argv)} does not parse (exit {exc.code})")


def _unit_exec(unit: Path) -> list[str]:
    [line] = [line for line in unit.read_text().splitlines() if line.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


def test_every_recipe_is_in_the_docs() -> None:
    docs = (ROOT / "docs" / "deploy.md").read_text()
    recipes = [p for p in DEPLOY.rglob("*") if p.is_file()]
    assert len(recipes) >= 5
    for path in recipes:
        assert str(path.relative_to(ROOT)) in docs, f"docs/deploy.md does not mention {path.relative_to(ROOT)}"


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_systemd_unit_verifies(unit: Path, tmp_path: Path) -> None:
    """``systemd-analyze verify`` with the unit's paths pointed at this venv's ``sectra`` (verify
    checks that the command exists); it reports a bad setting on stderr with exit 0, so any line
    naming the unit fails the test."""
    assert len(UNITS) == 2
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        _need("systemd-analyze", "apt-get install systemd")
    argv = _unit_exec(unit)
    _parses(argv)
    sectra = Path(sys.executable).with_name("sectra")
    if not sectra.exists():
        pytest.fail(f"no sectra script beside {sys.executable}: install the package (pip install -e .)")
    text = unit.read_text().replace(argv[0], str(sectra)).replace("/opt/myapp", str(tmp_path))
    local = tmp_path / unit.name
    local.write_text(text)
    done = subprocess.run([analyze, "verify", str(local)], capture_output=True, text=True, timeout=120)
    complaints = [line for line in (done.stdout + done.stderr).splitlines() if unit.name in line]
    assert done.returncode == 0 and not complaints, done.stdout + done.stderr
    # The checker is not a rubber stamp: a misspelt setting in the same unit is reported.
    (tmp_path / "bad.service").write_text(text.replace("KillMode=mixed", "KillMode=mixd"))
    bad = subprocess.run([analyze, "verify", str(tmp_path / "bad.service")], capture_output=True, text=True, timeout=120)
    assert "bad.service" in bad.stdout + bad.stderr
    # Graceful stops: SIGTERM to the main process only, which passes the stop on.
    assert "KillMode=mixed" in text and "KillSignal=SIGTERM" in text


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def test_compose_file_matches_the_compose_spec() -> None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        done = subprocess.run(["docker", "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
                              capture_output=True, text=True, timeout=120, cwd=ROOT,
                              env={**os.environ, "REDIS_PASSWORD": "x", "SECTRA_QUEUE_SECRET": "y", "SECTRA_TRUSTED_CALLBACKS": "https://pacs.example.org"})
        assert done.returncode == 0, done.stderr
    try:
        import check_jsonschema  # noqa: F401
    except ImportError:
        _need("check-jsonschema", "pip install -e '.[test]'")
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                           str(DEPLOY / "compose.yaml")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    services = _compose()["services"]
    assert {"app", "worker", "gpu-worker", "redis"} <= services.keys()
    for name in ("app", "worker", "gpu-worker"):
        _parses(services[name]["command"])
        assert "${REDIS_PASSWORD" in services[name]["environment"]["SECTRA_QUEUE"]  # merged from x-app
    assert services["gpu-worker"]["command"][3:5] == ["--queue", "gpu"]
    [gpu] = services["gpu-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu["capabilities"] == ["gpu"]
    redis = services["redis"]["command"]
    assert redis[redis.index("--requirepass") + 1].startswith("${REDIS_PASSWORD:?")  # refuses to start without one
    assert "/healthz" in json.dumps(services["app"]["healthcheck"]["test"])


def test_kubernetes_manifest_validates() -> None:
    try:
        import kubernetes_validate
    except ImportError:
        _need("kubernetes-validate", "pip install -e '.[test]'")
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "app.yaml").read_text()))
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    [container] = docs[0]["spec"]["template"]["spec"]["containers"]
    _parses(container["command"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    port = next(p for p in container["ports"] if p["name"] == container["readinessProbe"]["httpGet"]["port"])
    assert f"0.0.0.0:{port['containerPort']}" in container["command"]
    assert docs[1]["spec"]["selector"] == docs[0]["spec"]["selector"]["matchLabels"]
    broken = json.loads(json.dumps(docs[0]))
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_dockerfile() -> None:
    """No Docker daemon here: the Dockerfile is read. Its command parses, the extras it installs
    exist, its health check asks /healthz, and docker stop sends the SIGTERM the server handles."""
    text = (DEPLOY / "Dockerfile").read_text()
    instructions = [line.split(None, 1) for line in re.sub(r"\\\n", " ", text).splitlines() if line and not line.startswith("#")]
    by_name: dict[str, list[str]] = {}
    for name, rest in instructions:
        by_name.setdefault(name, []).append(rest.strip())
    assert by_name["FROM"][0].startswith("python:3.1")
    _parses(json.loads(by_name["CMD"][-1]))
    assert by_name["STOPSIGNAL"] == ["SIGTERM"] and by_name["USER"] == ["sectra"]
    assert "/healthz" in by_name["HEALTHCHECK"][0]
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    [wanted] = re.findall(r"\[([a-z,]+)\]\"", " ".join(by_name["RUN"]))
    assert set(wanted.split(",")) <= extras, (wanted, extras)
    env = " ".join(by_name["ENV"])
    assert "SECTRA_BIND=0.0.0.0:8000" in env and "EXPOSE" in by_name and by_name["EXPOSE"] == ["8000"]
