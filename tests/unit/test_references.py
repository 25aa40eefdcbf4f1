"""Every file, folder and module the README and the library's docstrings name exists (defect 4: stale references)."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOP = ("dags", "include", "plugins", "sql", "tests", "bench", ".ci")
_TOPS = "|".join(re.escape(t) for t in TOP)
PATH_RE = re.compile(rf"`((?:{_TOPS})/[A-Za-z0-9_./-]*)`")
MODULE_RE = re.compile(r"\binclude(?:\.[a-z_]+)+")


def _sources() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "include").rglob("*.py")), *sorted((ROOT / "dags").glob("*.py"))]


def _named_paths(text: str) -> set[str]:
    return {m.group(1).rstrip(".") for m in PATH_RE.finditer(text)}


IGNORED = {ln.strip().rstrip("/") for ln in (ROOT / ".gitignore").read_text().splitlines() if ln.strip()}


def _exists(name: str) -> bool:
    if "*" in name or "NNN" in name or "<" in name:  # patterns such as sql/migrations/NNN_name.sql
        return True
    if name.rstrip("/") in IGNORED:  # made on first use (e.g. bench/.venvs/), never committed
        return True
    return (ROOT / name).exists()


def _module_exists(dotted: str) -> bool:
    """``include.modelwatch.x.y`` is a module, or ``include.modelwatch.x.name`` an attribute of module x."""
    parts = dotted.split(".")
    for n in range(len(parts), 1, -1):
        try:
            spec = importlib.util.find_spec(".".join(parts[:n]))
        except ModuleNotFoundError:  # a parent is a plain module: the rest names an attribute
            continue
        if spec is None:
            continue
        if n == len(parts):
            return True
        module = importlib.import_module(".".join(parts[:n]))
        return hasattr(module, parts[n])
    return False


@pytest.mark.parametrize("source", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_named_paths_and_modules_exist(source: Path):
    text = source.read_text()
    missing = sorted(p for p in _named_paths(text) if not _exists(p))
    assert missing == [], f"{source.relative_to(ROOT)} names missing paths: {missing}"
    modules = sorted({m for m in MODULE_RE.findall(text) if not _module_exists(m)})
    assert modules == [], f"{source.relative_to(ROOT)} names missing modules: {modules}"


def test_the_check_notices_a_missing_path():
    assert _named_paths("see `include/monitoring/statsd_mapping.yml` and `dags/score_signals.py`") == {
        "include/monitoring/statsd_mapping.yml",
        "dags/score_signals.py",
    }
    assert not _exists("include/monitoring/statsd_mapping.yml")
    assert not _module_exists("include.modelwatch.drift_engine")
