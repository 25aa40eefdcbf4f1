"""Model artifacts are loaded only after their SHA-256 check: a static check (``ast``) of include/, plugins/, dags/
and bench/.

1. A model deserializer (``pickle``/``joblib``/``cloudpickle``/``dill``/``marshal``/``torch`` loads,
   ``pandas.read_pickle``, ``numpy.load(allow_pickle=True)``, ``lgb.Booster(model_file=/model_str=)``,
   ``<booster>.load_model(...)``) is called only in ``training.deserialize_model``; ``pickle``-like modules are not
   imported at all.
2. Every call of ``deserialize_model(data)`` gets bytes that went through the registry's verified read:
   ``registry.read_artifact(mv)``, the bytes of ``registry.load_by_alias(...)``, or a parameter every caller of the
   function passes such bytes for.
3. ``registry.read_artifact`` hashes what it read (``sha256_bytes``) and raises ``ArtifactIntegrityError``, and
   ``load_by_alias`` returns ``read_artifact(...)``. (The refusal itself is tested on real files:
   tests/db/test_registry.py, tests/e2e/test_score_signals.py's corrupted champion.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("include", "plugins", "dags", "bench")
DESERIALIZER = ("include/modelwatch/training/training.py", "deserialize_model")
REGISTRY = "include/modelwatch/registry/__init__.py"
PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "joblib", "cloudpickle", "dill", "marshal", "shelve", "torch"}
VERIFIED_READS = {"read_artifact", "load_by_alias"}


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return f"{_name(func.value)}.{func.attr}"
    return "?"


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _enclosing(parents, node) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return node
    return None


def _is_loader(call: ast.Call) -> str | None:
    """Why ``call`` deserializes a model (None when it does not)."""
    name = _name(call.func)
    head, _, last = name.rpartition(".")
    kw = {k.arg for k in call.keywords}
    if head.split(".")[0] in PICKLE_MODULES and "load" in last:
        return f"{name}()"
    if last == "read_pickle":
        return f"{name}()"
    if (
        last == "load"
        and head in ("np", "numpy")
        and any(
            k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
            for k in call.keywords
        )
    ):
        return f"{name}(allow_pickle=...)"
    if last == "Booster" and kw & {"model_file", "model_str"}:
        return f"{name}({', '.join(sorted(kw & {'model_file', 'model_str'}))}=...)"
    if last == "load_model":
        return f"{name}()"
    return None


def check(sources: dict[str, str]) -> list[str]:
    problems: list[str] = []
    for path, text in sources.items():
        tree = ast.parse(text, filename=path)
        parents = _parents(tree)
        functions = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for mod in mods:
                    if mod.split(".")[0] in PICKLE_MODULES:
                        problems.append(f"{path}:{node.lineno}: imports {mod} (artifacts are never pickled)")
            if not isinstance(node, ast.Call):
                continue
            fn = _enclosing(parents, node)
            where = (path, fn.name if fn else "<module>")
            why = _is_loader(node)
            if why and where != DESERIALIZER:
                problems.append(f"{path}:{node.lineno}: {where[1]}: {why} outside {DESERIALIZER[0]}:{DESERIALIZER[1]}")
            if _name(node.func).rpartition(".")[2] == "deserialize_model":
                if not node.args or not _verified(node.args[0], fn, functions, parents, set()):
                    arg = ast.unparse(node.args[0]) if node.args else ""
                    problems.append(
                        f"{path}:{node.lineno}: {where[1]}: deserialize_model({arg}) is not given bytes from "
                        "registry.read_artifact (the SHA-256 check)"
                    )
    return problems


def _verified(expr: ast.expr, fn, functions, parents, seen: set) -> bool:
    """``expr`` is bytes read through the registry's verified path."""
    if isinstance(expr, ast.Call):
        return _name(expr.func).rpartition(".")[2] == "read_artifact"
    if isinstance(expr, ast.Subscript) and isinstance(expr.value, ast.Call):
        return _name(expr.value.func).rpartition(".")[2] == "load_by_alias"
    if not isinstance(expr, ast.Name) or fn is None or (fn.name, expr.id) in seen:
        return False
    seen = seen | {(fn.name, expr.id)}
    bound: list[ast.expr] = []
    for node in ast.walk(fn):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id == expr.id:
                    bound.append(node.value)
                elif isinstance(target, ast.Tuple):
                    for i, elt in enumerate(target.elts):
                        if isinstance(elt, ast.Name) and elt.id == expr.id:
                            bound.append(ast.Subscript(value=node.value, slice=ast.Constant(i), ctx=ast.Load()))
    params = [a.arg for a in (*fn.args.posonlyargs, *fn.args.args)]
    if expr.id in params and not bound:
        # every caller (in this module) passes verified bytes for this parameter, and there is at least one
        pos = params.index(expr.id)
        root = fn
        while root in parents:
            root = parents[root]
        calls = [n for n in ast.walk(root) if isinstance(n, ast.Call) and _name(n.func) == fn.name]
        return bool(calls) and all(
            len(c.args) > pos and _verified(c.args[pos], _enclosing(parents, c), functions, parents, seen)
            for c in calls
        )
    return bool(bound) and all(_verified(v, fn, functions, parents, seen) for v in bound)


def _repo_sources() -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text() for top in SCANNED for p in sorted((ROOT / top).rglob("*.py"))}


def test_models_are_loaded_only_from_verified_artifacts() -> None:
    sources = _repo_sources()
    assert check(sources) == []
    # not vacuous: the deserializer and its callers are there
    calls = sum(text.count("deserialize_model(") for text in sources.values())
    assert calls >= 5, calls


def test_the_registry_read_checks_the_sha256() -> None:
    tree = ast.parse((ROOT / REGISTRY).read_text())
    fns = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    read = fns["read_artifact"]
    called = {_name(n.func).rpartition(".")[2] for n in ast.walk(read) if isinstance(n, ast.Call)}
    raised = {_name(n.exc.func) for n in ast.walk(read) if isinstance(n, ast.Raise) and isinstance(n.exc, ast.Call)}
    # a bad hash is an integrity error; a store that cannot be read is a store error (nothing is returned either way)
    assert "sha256_bytes" in called and "ArtifactIntegrityError" in raised
    assert raised <= {"ArtifactIntegrityError", "ArtifactStoreError"}, raised
    # the hash of the bytes read is compared with the registered artifact_sha256 (directly or through a local name)
    hashed = {
        t.id
        for n in ast.walk(read)
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call) and _name(n.value.func).endswith("sha256_bytes")
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    registered = {
        t.id
        for n in ast.walk(read)
        if isinstance(n, ast.Assign) and "artifact_sha256" in ast.unparse(n.value)
        for t in n.targets
        if isinstance(t, ast.Name)
    } | {"artifact_sha256"}
    compares = [
        n
        for n in ast.walk(read)
        if isinstance(n, ast.Compare)
        and {x.id for x in ast.walk(n) if isinstance(x, ast.Name)} & hashed
        and any(r in ast.unparse(n) for r in registered)
    ]
    assert compares, "read_artifact does not compare the hash with the registered artifact_sha256"
    rets = [n.value for n in ast.walk(fns["load_by_alias"]) if isinstance(n, ast.Return)]
    assert rets and all("read_artifact(" in ast.unparse(r) for r in rets)


BAD = {
    "pickle": "import pickle\ndef f(p):\n    return pickle.loads(p.read_bytes())\n",
    "joblib": "def f(p):\n    import joblib\n    return joblib.load(p)\n",
    "lightgbm file": "def f(p):\n    import lightgbm as lgb\n    return lgb.Booster(model_file=str(p))\n",
    "xgboost load_model": "def f(p):\n    b = xgb.Booster()\n    b.load_model(str(p))\n    return b\n",
    "unverified bytes": "def f(p):\n    return training.deserialize_model(p.read_bytes())\n",
    "unverified via a helper": (
        "def g(blob):\n    return training.deserialize_model(blob)\ndef f(p):\n    return g(p.read_bytes())\n"
    ),
}
GOOD = {
    "read_artifact": "def f(mv):\n    return training.deserialize_model(registry.read_artifact(mv))\n",
    "load_by_alias": (
        "def f(conn):\n    mv, blob = registry.load_by_alias(conn, 'm')\n    return training.deserialize_model(blob)\n"
    ),
    "through a helper": (
        "def g(mv, blob):\n    return training.deserialize_model(blob)\n"
        "def f(conn):\n    mv, blob = registry.load_by_alias(conn, 'm')\n    return g(mv, blob)\n"
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_checker_catches(case: str) -> None:
    assert check({"x.py": BAD[case]}), case


@pytest.mark.parametrize("case", sorted(GOOD))
def test_checker_accepts(case: str) -> None:
    assert check({"x.py": GOOD[case]}) == []
