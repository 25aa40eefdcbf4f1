"""The ModelWatch image's requirements resolve (``make celery``; needs PyPI, as ``docker compose build`` does).

docker/Dockerfile runs ``pip install "apache-airflow==${AIRFLOW_VERSION}" -r requirements.txt -c constraints.txt`` on
``apache/airflow:<version>-python3.11``. Docker cannot run here, so pip resolves the same command with ``--dry-run
--ignore-installed`` (nothing of this venv counts as installed) on this machine, which matches the image's platform:
CPython 3.11 on x86_64 Linux (Debian 12, glibc 2.36, as the official image). The resolution must succeed, and every
package it would install must be pinned in constraints.txt at exactly that version (constraints.txt is complete),
with Airflow at the image's version.
"""

from __future__ import annotations

import json
import platform
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_image_requirements_resolve_to_the_constraints(tmp_path: Path) -> None:
    assert sys.version_info[:2] == (3, 11) and platform.machine() == "x86_64", "the image is CPython 3.11 on x86_64"
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    image_version = re.search(r"^ARG AIRFLOW_IMAGE=apache/airflow:(\S+)-python3\.11$", dockerfile, re.M)
    assert image_version, "docker/Dockerfile: no ARG AIRFLOW_IMAGE=apache/airflow:<version>-python3.11"
    pins = {
        canonical(name): version
        for name, version in (line.split("==", 1) for line in (ROOT / "constraints.txt").read_text().split())
    }
    assert pins["apache-airflow"] == image_version.group(1)
    report = tmp_path / "report.json"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            str(report),
            f"apache-airflow=={image_version.group(1)}",
            "-r",
            str(ROOT / "requirements.txt"),
            "-c",
            str(ROOT / "constraints.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert res.returncode == 0, f"pip could not resolve the image's requirements:\n{res.stderr[-4000:]}"
    resolved = {
        canonical(i["metadata"]["name"]): i["metadata"]["version"] for i in json.loads(report.read_text())["install"]
    }
    unpinned = sorted(set(resolved) - set(pins))
    assert not unpinned, f"resolved but not pinned in constraints.txt: {unpinned}"
    differ = {n: (v, pins[n]) for n, v in resolved.items() if pins[n] != v}
    assert not differ, f"resolved versions differ from constraints.txt: {differ}"
    for name in ("apache-airflow", "apache-airflow-providers-celery", "celery", "kombu", "redis"):
        assert resolved.get(name) == pins[name], name
