"""All SQL is parameterized: a static check (``ast``) of every Python file under include/, plugins/, dags/ and
bench/, and of the SQL files under sql/dml.

A *sink* is a call that runs SQL or turns text into SQL: ``<cursor>.execute/executemany/copy(sql, ...)``,
``pandas.read_sql*(sql, ...)``, ``psycopg.sql.SQL(text)`` and every function of the code base that passes one of
its own parameters straight to a sink (found by the checker, e.g. ``storage.fetch_dicts(conn, sql)``,
``queries_common.run(conn, query)``, ``queries_common.text(statement)``). The SQL argument of every sink must be
built from constants only:

- string literals, module-level constants made of literals, and f-strings / ``+`` / ``str.join`` of those
  (fixed SQL text split over names, e.g. a column list ``_COLUMNS``);
- ``storage.read_sql("dml/<file>.sql")`` (the file's text; sql/dml is checked below);
- psycopg's ``sql`` composition: ``sql.SQL(<constant>)``, ``sql.Identifier(x)``, ``sql.Literal(x)``,
  ``sql.Placeholder(x)``, ``<composable>.format(...)``, ``<composable>.join(...)``, ``+`` of composables;
- a local variable, loop variable or same-module function whose every assigned / returned value is one of the above.

Anything else is a violation reported as ``file:line: function: reason``: an f-string interpolating a value, ``%``
formatting, ``str.format``, ``+`` concatenation of a non-constant, or an expression the checker cannot prove
constant. Values go through ``%(name)s`` placeholders; identifiers through ``sql.Identifier``. ``ALLOW`` lists the
few reviewed exceptions (file + function + why it is safe); an entry that no longer matches a violation fails too.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("include", "plugins", "dags", "bench")

# method names that execute their first positional argument as SQL (psycopg cursor/connection, pandas)
SINK_METHODS = ("execute", "executemany", "copy", "read_sql_query")
# psycopg.sql constructors: SQL(text) is a sink for its text; the others quote or bind what they are given
SQL_SAFE_CTORS = ("Identifier", "Literal", "Placeholder", "Composed")

# Reviewed exceptions: (file, function) -> why it is safe. Keep this list small.
ALLOW: dict[tuple[str, str], str] = {
    ("include/modelwatch/ops/migrations.py", "migrate"): (
        "runs the statements of the repository's own sql/migrations/NNN_*.sql files (split by split_statements); "
        "the text is fixed in the repository and checksummed in schema_migrations, no value is interpolated"
    ),
}


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    function: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.function}: {self.reason}"


Function = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass
class _Module:
    path: str
    dotted: str
    tree: ast.Module
    functions: dict[str, Function] = field(default_factory=dict)
    module_assigns: dict[str, list[ast.expr]] = field(default_factory=dict)
    imports: dict[str, str] = field(default_factory=dict)  # local name -> dotted name it refers to
    parents: dict[ast.AST, ast.AST] = field(default_factory=dict)


def _dotted(path: str) -> str:
    parts = path.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_psycopg_sql(func: ast.expr, name: str) -> bool:
    """``sql.<name>`` / ``psycopg.sql.<name>`` (or a bare ``<name>`` imported from psycopg.sql)."""
    if isinstance(func, ast.Attribute) and func.attr == name:
        base = func.value
        return (isinstance(base, ast.Name) and base.id == "sql") or (
            isinstance(base, ast.Attribute) and base.attr == "sql"
        )
    return isinstance(func, ast.Name) and func.id == name


def _assigned_names(target: ast.expr) -> Iterator[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, ast.Tuple | ast.List):
        for elt in target.elts:
            yield from _assigned_names(elt)
    elif isinstance(target, ast.Starred):
        yield from _assigned_names(target.value)


def _bindings(target: ast.expr, value: ast.expr) -> Iterator[tuple[str, ast.expr]]:
    """(name, the expression it is bound to) of ``target = value``; tuple targets take their element
    (``a, b = f()`` binds ``a`` to ``f()[0]``)."""
    if isinstance(target, ast.Name):
        yield target.id, value
    elif isinstance(target, ast.Tuple | ast.List):
        for i, elt in enumerate(target.elts):
            if isinstance(value, ast.Tuple | ast.List) and len(value.elts) == len(target.elts):
                part: ast.expr = value.elts[i]
            else:
                part = ast.copy_location(ast.Subscript(value=value, slice=ast.Constant(i), ctx=ast.Load()), value)
            yield from _bindings(elt, part)


class Checker:
    """Checks the SQL arguments of every sink in a set of modules (see the module docstring).

    A function parameter that reaches SQL text (directly or interpolated) is an *SQL parameter*: the function is then
    a sink for it and every call of the function is checked for that argument, to a fixed point."""

    def __init__(self, sources: dict[str, str]) -> None:
        self.modules: dict[str, _Module] = {}
        self.by_dotted: dict[str, _Module] = {}
        for path, text in sources.items():
            tree = ast.parse(text, filename=path)
            mod = _Module(path, _dotted(path), tree)
            for node in ast.walk(tree):
                for child in ast.iter_child_nodes(node):
                    mod.parents[child] = node
                if isinstance(node, Function):
                    mod.functions.setdefault(node.name, node)
                elif isinstance(node, ast.Import):
                    for a in node.names:
                        mod.imports[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
                elif isinstance(node, ast.ImportFrom):
                    base = node.module or ""
                    if node.level:
                        pkg = (
                            mod.dotted.split(".")[: -node.level]
                            if not path.endswith("__init__.py")
                            else (mod.dotted.split(".")[: len(mod.dotted.split(".")) - node.level + 1])
                        )
                        base = ".".join([*pkg, base] if base else pkg)
                    for a in node.names:
                        mod.imports[a.asname or a.name] = f"{base}.{a.name}"
            for stmt in tree.body:
                for target, value in self._assignments(stmt):
                    for name, bound in _bindings(target, value):
                        mod.module_assigns.setdefault(name, []).append(bound)
            self.modules[path] = mod
            self.by_dotted[mod.dotted] = mod
        # (module path, function name) -> names of its parameters that reach SQL text
        self.sql_params: dict[tuple[str, str], set[str]] = {}
        # the subset interpolated into SQL text (not passed whole): their function needs a caller to check
        self.interpolated: dict[tuple[str, str], set[str]] = {}
        self.callers: dict[tuple[str, str], int] = {}
        self._interpolating = False

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _assignments(stmt: ast.AST) -> Iterator[tuple[ast.expr, ast.expr]]:
        if isinstance(stmt, ast.Assign):
            for t in stmt.targets:
                yield t, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            yield stmt.target, stmt.value
        elif isinstance(stmt, ast.AugAssign):
            yield stmt.target, ast.copy_location(ast.BinOp(left=stmt.target, op=stmt.op, right=stmt.value), stmt)
        elif isinstance(stmt, ast.NamedExpr):
            yield stmt.target, stmt.value

    @staticmethod
    def _function_of(mod: _Module, node: ast.AST) -> Function | None:
        while node in mod.parents:
            node = mod.parents[node]
            if isinstance(node, Function):
                return node
        return None

    @staticmethod
    def _params(fn: Function) -> list[str]:
        a = fn.args
        return [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]

    def resolve(self, mod: _Module, func: ast.expr) -> tuple[_Module, Function] | None:
        """The project function a call's ``func`` names (same module, ``from m import f``, ``m.f``), if any."""
        dotted = None
        if isinstance(func, ast.Name):
            if func.id in mod.functions:
                return mod, mod.functions[func.id]
            dotted = mod.imports.get(func.id)
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in mod.imports:
            dotted = f"{mod.imports[func.value.id]}.{func.attr}"
        if dotted is None or "." not in dotted:
            return None
        owner, _, name = dotted.rpartition(".")
        target = self.by_dotted.get(owner)
        if target is None or name not in target.functions:
            return None
        return target, target.functions[name]

    def sql_args(self, mod: _Module, call: ast.Call) -> list[ast.expr]:
        return [a for a, _ in self._sql_args(mod, call)]

    def _sql_args(self, mod: _Module, call: ast.Call) -> list[tuple[ast.expr, bool]]:
        """The arguments of ``call`` that are SQL text, each with whether the callee interpolates it into SQL
        (rather than running it whole); empty when the call is no sink."""
        func = call.func
        if _is_psycopg_sql(func, "SQL"):
            return [(a, False) for a in call.args[:1]]
        if isinstance(func, ast.Attribute) and func.attr in SINK_METHODS:
            base = func.value
            if isinstance(base, ast.Call) and isinstance(base.func, ast.Name) and base.func.id == "super":
                return []  # an operator's execute(context)
            if not (isinstance(base, ast.Name) and base.id in mod.imports):  # a method, not a module function
                return [(a, False) for a in call.args[:1]]
        found = self.resolve(mod, func)
        if found is None:
            return []
        target, fn = found
        self.callers[(target.path, fn.name)] = self.callers.get((target.path, fn.name), 0) + 1
        wanted = self.sql_params.get((target.path, fn.name))
        if not wanted:
            return []
        params = [p for p in self._params(fn) if p not in ("self", "cls")]
        inner = self.interpolated.get((target.path, fn.name), set())
        out = [(a, params[i] in inner) for i, a in enumerate(call.args) if i < len(params) and params[i] in wanted]
        out += [(k.value, k.arg in inner) for k in call.keywords if k.arg in wanted]
        return out

    # ------------------------------------------------------------------ the check

    def violations(self) -> list[Violation]:
        while True:
            before = (
                {k: set(v) for k, v in self.sql_params.items()},
                {k: set(v) for k, v in self.interpolated.items()},
            )
            self.callers = {}
            out: set[Violation] = set()
            for mod in self.modules.values():
                for node in ast.walk(mod.tree):
                    if not isinstance(node, ast.Call):
                        continue
                    for arg, interpolated in self._sql_args(mod, node):
                        fn = self._function_of(mod, node)
                        self._interpolating = interpolated
                        for line, reason in self._unsafe(mod, fn, arg, frozenset()):
                            out.add(Violation(mod.path, line, fn.name if fn else "<module>", reason))
                        self._interpolating = False
            if (self.sql_params, self.interpolated) == before:
                break
        for (path, name), params in self.interpolated.items():
            if not self.callers.get((path, name)):
                fn = self.modules[path].functions[name]
                out.add(
                    Violation(
                        path,
                        fn.lineno,
                        name,
                        f"parameter(s) {sorted(params)} interpolated into SQL text but no caller in the scanned code "
                        "to check (an entry point passes values: use a placeholder or sql.Identifier)",
                    )
                )
        return sorted(out, key=lambda v: (v.path, v.line, v.reason))

    def _mark(self, mod: _Module, fn: Function | None, name: str, *, interpolated: bool) -> bool:
        """Record ``name`` as an SQL parameter of ``fn`` when it is one of its parameters; True if it is."""
        if fn is None or name not in self._params(fn) or name in ("self", "cls"):
            return False
        self.sql_params.setdefault((mod.path, fn.name), set()).add(name)
        if interpolated or self._interpolating:
            self.interpolated.setdefault((mod.path, fn.name), set()).add(name)
        return True

    def _unsafe(self, mod: _Module, fn, expr: ast.expr, seen: frozenset) -> Iterator[tuple[int, str]]:
        """Why ``expr`` (an SQL text or composable) is not built from constants; nothing when it is."""
        line = expr.lineno
        if isinstance(expr, ast.Name):
            yield from self._unsafe_name(mod, fn, expr, seen)
            return
        if self._constant(mod, fn, expr, seen):
            return
        if isinstance(expr, ast.JoinedStr):
            for part in expr.values:
                if isinstance(part, ast.FormattedValue) and not self._constant(mod, fn, part.value, seen):
                    yield (
                        line,
                        f"f-string interpolates {ast.unparse(part.value)!r} (use a placeholder or sql.Identifier)",
                    )
            return
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Mod):
            yield line, f"%-formatting {ast.unparse(expr)[:80]!r} (use a placeholder)"
            return
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            for side in (expr.left, expr.right):
                for _, why in self._unsafe(mod, fn, side, seen):
                    yield line, f"concatenation of a non-constant: {why}"
            return
        if isinstance(expr, ast.IfExp):
            yield from self._unsafe(mod, fn, expr.body, seen)
            yield from self._unsafe(mod, fn, expr.orelse, seen)
            return
        if isinstance(expr, ast.Call):
            yield from self._unsafe_call(mod, fn, expr, seen)
            return
        if isinstance(expr, ast.Name):
            yield from self._unsafe_name(mod, fn, expr, seen)
            return
        if isinstance(expr, ast.Subscript) and isinstance(expr.slice, ast.Constant):
            inner = expr.value
            if isinstance(inner, ast.Call) and isinstance(expr.slice.value, int):
                found = self.resolve(mod, inner.func)
                if found is not None and ("ret", found[0].path, found[1].name) not in seen:
                    target, tfn = found
                    for ret in self._returns(tfn):
                        part = ret.elts[expr.slice.value] if isinstance(ret, ast.Tuple) else ret
                        for _, why in self._unsafe(target, tfn, part, seen | {("ret", target.path, tfn.name)}):
                            yield line, f"{tfn.name}() returns SQL built from values: {why}"
                    return
            if isinstance(inner, ast.Name):
                for _, why in self._unsafe_name(mod, fn, inner, seen):
                    yield line, why
                return
        yield line, f"cannot prove {ast.unparse(expr)[:80]!r} is constant SQL"

    @staticmethod
    def _returns(fn: Function) -> list[ast.expr]:
        out = []
        for node in ast.walk(fn):
            if isinstance(node, ast.Return) and node.value is not None:
                out.append(node.value)
        return out

    def _unsafe_call(self, mod: _Module, fn, call: ast.Call, seen: frozenset) -> Iterator[tuple[int, str]]:
        func = call.func
        if _is_psycopg_sql(func, "SQL") or any(_is_psycopg_sql(func, n) for n in SQL_SAFE_CTORS):
            return  # sql.SQL's text is checked as a sink of its own; the others quote or bind
        if isinstance(func, ast.Attribute) and func.attr in ("format", "join"):
            if self._composable(mod, fn, func.value, seen):
                return  # psycopg.sql composition: identifiers quoted, values bound
            if func.attr == "format":
                yield call.lineno, f"str.format {ast.unparse(call)[:80]!r} (use a placeholder or sql.Identifier)"
            else:
                yield call.lineno, f"str.join of non-constant parts {ast.unparse(call)[:80]!r}"
            return
        found = self.resolve(mod, func)
        if found is not None:
            target, tfn = found
            key = ("ret", target.path, tfn.name)
            if key in seen:
                return
            if tfn.name == "read_sql" and target.dotted.endswith("storage"):
                return  # the text of sql/<name> (sql/dml is checked below)
            for ret in self._returns(tfn):
                for _, why in self._unsafe(target, tfn, ret, seen | {key}):
                    yield call.lineno, f"{tfn.name}() returns SQL built from values: {why}"
            return
        yield call.lineno, f"cannot prove {ast.unparse(call)[:80]!r} returns constant SQL"

    def _local_values(self, fn, name: str) -> tuple[list[ast.expr], list[ast.expr], bool]:
        """Values bound to ``name`` in ``fn``, the iterables it loops over, and whether it is a parameter."""
        values: list[ast.expr] = []
        loops: list[ast.expr] = []
        if fn is None:
            return values, loops, False
        for node in ast.walk(fn):
            for target, value in self._assignments(node):
                values.extend(v for n, v in _bindings(target, value) if n == name)
            if isinstance(node, ast.For | ast.comprehension) and name in _assigned_names(node.target):
                loops.append(node.iter)
            if isinstance(node, ast.withitem) and node.optional_vars is not None:
                values.extend(v for n, v in _bindings(node.optional_vars, node.context_expr) if n == name)
        return values, loops, name in self._params(fn)

    def _unsafe_name(self, mod: _Module, fn, expr: ast.Name, seen: frozenset) -> Iterator[tuple[int, str]]:
        key = ("name", mod.path, id(fn), expr.id)
        if key in seen:
            return
        seen = seen | {key}
        values, loops, is_param = self._local_values(fn, expr.id)
        if is_param:
            self._mark(mod, fn, expr.id, interpolated=False)  # the callers' argument is checked
        elif not values and not loops:
            mod, values = self._module_values(mod, expr.id)
            fn = None
            if not values:
                yield expr.lineno, f"cannot resolve {expr.id!r} to constant SQL"
                return
        for value in values:
            for _, why in self._unsafe(mod, fn, value, seen):
                yield expr.lineno, f"{expr.id!r} is assigned SQL built from values: {why}"
        for it in loops:
            if not self._constant(mod, fn, it, seen):
                yield expr.lineno, f"{expr.id!r} loops over {ast.unparse(it)[:60]!r}, not constant SQL"

    def _constant(self, mod: _Module, fn, expr: ast.expr, seen: frozenset) -> bool:
        """``expr`` is a compile-time constant of the module (literals and module-level names made of them; a
        parameter of ``fn`` counts as constant and becomes an SQL parameter its callers must pass a constant for)."""
        if isinstance(expr, ast.Constant):
            return True
        if isinstance(expr, ast.JoinedStr):
            return all(
                not isinstance(p, ast.FormattedValue) or self._constant(mod, fn, p.value, seen) for p in expr.values
            )
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add | ast.Mod):
            return self._constant(mod, fn, expr.left, seen) and self._constant(mod, fn, expr.right, seen)
        if isinstance(expr, ast.Tuple | ast.List | ast.Set):
            return all(self._constant(mod, fn, e, seen) for e in expr.elts)
        if isinstance(expr, ast.Starred):
            return self._constant(mod, fn, expr.value, seen)
        if (
            isinstance(expr, ast.Subscript)
            and isinstance(expr.value, ast.Call)
            and isinstance(expr.slice, ast.Constant)
        ):
            found = self.resolve(mod, expr.value.func)  # f(...)[i]: element i of what f returns
            if found is None or ("cret", found[1].name) in seen or not isinstance(expr.slice.value, int):
                return False
            target, tfn = found
            inner = seen | {("cret", tfn.name)}
            parts = [r.elts[expr.slice.value] if isinstance(r, ast.Tuple) else r for r in self._returns(tfn)]
            return bool(parts) and all(self._constant(target, tfn, r, inner) for r in parts)
        if isinstance(expr, ast.GeneratorExp | ast.ListComp) and len(expr.generators) == 1:
            gen = expr.generators[0]
            if gen.ifs or not self._constant(mod, fn, gen.iter, seen):
                return False
            loop_vars = set(_assigned_names(gen.target))
            return all(
                self._constant(mod, fn, n, seen) if not (isinstance(n, ast.Name) and n.id in loop_vars) else True
                for n in ast.walk(expr.elt)
                if isinstance(n, ast.Name)
            ) and not any(isinstance(n, ast.Call) for n in ast.walk(expr.elt))
        if isinstance(expr, ast.Name):
            key = ("const", mod.path, id(fn), expr.id)
            if key in seen:
                return True  # a += cycle: decided by the other bindings
            seen = seen | {key}
            if fn is not None:
                values, loops, is_param = self._local_values(fn, expr.id)
                if values or loops or is_param:
                    if is_param:
                        self._mark(mod, fn, expr.id, interpolated=True)
                    return all(self._constant(mod, fn, v, seen) for v in [*values, *loops])
            if expr.id in mod.functions:
                return False
            owner, values = self._module_values(mod, expr.id)
            return bool(values) and all(self._constant(owner, None, v, seen) for v in values)
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute):
            # a str method of constants: "...".replace(a, b), CONST.format(where=...), CONST.lower()
            if not self._constant(mod, fn, expr.func.value, seen):
                return False
            return all(self._constant(mod, fn, a, seen) for a in [*expr.args, *(k.value for k in expr.keywords)])
        if isinstance(expr, ast.Subscript):
            return self._constant(mod, fn, expr.value, seen) and self._constant(mod, fn, expr.slice, seen)
        if isinstance(expr, ast.Call):
            found = self.resolve(mod, expr.func)
            if found is None or ("cret", found[1].name) in seen:
                return False
            target, tfn = found
            rets = self._returns(tfn)
            inner = seen | {("cret", tfn.name)}
            return bool(rets) and all(self._constant(target, tfn, r, inner) for r in rets)
        return False

    def _module_values(self, mod: _Module, name: str) -> tuple[_Module, list[ast.expr]]:
        """Module-level bindings of ``name`` in ``mod`` or, when imported (``from m import NAME``), in ``m``."""
        if name in mod.module_assigns:
            return mod, mod.module_assigns[name]
        owner, _, attr = mod.imports.get(name, "").rpartition(".")
        target = self.by_dotted.get(owner)
        if target is not None and attr in target.module_assigns:
            return target, target.module_assigns[attr]
        return mod, []

    def _composable(self, mod: _Module, fn, expr: ast.expr, seen: frozenset) -> bool:
        """``expr`` is a psycopg.sql composable built safely (its own SQL() texts are checked as sinks)."""
        if isinstance(expr, ast.Call):
            name = expr.func.attr if isinstance(expr.func, ast.Attribute) else getattr(expr.func, "id", None)
            if name in ("SQL", *SQL_SAFE_CTORS) and _is_psycopg_sql(expr.func, name):
                return True
            if name in ("format", "join") and isinstance(expr.func, ast.Attribute):
                return self._composable(mod, fn, expr.func.value, seen)
            found = self.resolve(mod, expr.func)
            if found is not None and ("comp", found[1].name) not in seen:
                rets = self._returns(found[1])
                return bool(rets) and all(
                    self._composable(found[0], found[1], r, seen | {("comp", found[1].name)}) for r in rets
                )
            return False
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            return self._composable(mod, fn, expr.left, seen) or self._composable(mod, fn, expr.right, seen)
        if isinstance(expr, ast.Name):
            key = ("comp", id(fn), expr.id)
            if key in seen:
                return False
            values, _, _ = self._local_values(fn, expr.id)
            if not values:
                mod, values = self._module_values(mod, expr.id)
            return bool(values) and all(self._composable(mod, fn, v, seen | {key}) for v in values)
        return False


def check_sources(sources: dict[str, str]) -> list[Violation]:
    return Checker(sources).violations()


def _repo_sources() -> dict[str, str]:
    out = {}
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            out[str(path.relative_to(ROOT))] = path.read_text()
    return out


# ---------------------------------------------------------------------------------------------- the repository


def test_every_sql_statement_is_parameterized() -> None:
    found = check_sources(_repo_sources())
    unexpected = [v for v in found if (v.path, v.function) not in ALLOW]
    assert not unexpected, "SQL built by string formatting with values:\n" + "\n".join(map(str, unexpected))
    used = {(v.path, v.function) for v in found}
    stale = [key for key in ALLOW if key not in used]
    assert not stale, f"allow-list entries that no longer match a violation (remove them): {stale}"


def test_checker_sees_the_repository_sinks() -> None:
    """The scan is not vacuous: it finds the cursor calls and the library's wrappers of them."""
    checker = Checker(_repo_sources())
    checker.violations()
    wrappers = {f"{path}:{name}({', '.join(sorted(params))})" for (path, name), params in checker.sql_params.items()}
    assert {
        "include/modelwatch/data/storage.py:fetch_dicts(sql)",
        "include/modelwatch/api/queries_common.py:run(query)",
        "include/modelwatch/api/queries_common.py:text(statement)",
    } <= wrappers, sorted(wrappers)
    sinks = sum(
        len(checker.sql_args(mod, node))
        for mod in checker.modules.values()
        for node in ast.walk(mod.tree)
        if isinstance(node, ast.Call)
    )
    assert sinks > 300, sinks


# sql/dml: psycopg named placeholders %(name)s, the escaped percent %% and nothing else that formats
_DML_ALLOWED_PERCENT = re.compile(r"%\([a-z_][a-z0-9_]*\)s|%%")


def dml_problems(text: str) -> list[str]:
    problems = []
    for lineno, line in enumerate(text.splitlines(), 1):
        code = line.split("--", 1)[0]
        rest = _DML_ALLOWED_PERCENT.sub("", code)
        if "%" in rest:
            problems.append(f"{lineno}: '%' that is not a %(name)s placeholder: {line.strip()}")
        # outside string literals no brace at all; inside them (a JSON path '{}', an array '{1,2}') no {name} field
        if re.search(r"[{}]", re.sub(r"'[^']*'", "''", code)) or re.search(r"\{[A-Za-z_]\w*\}", code):
            problems.append(f"{lineno}: '{{...}}' interpolation marker: {line.strip()}")
    return problems


def test_dml_files_have_placeholders_only() -> None:
    files = sorted((ROOT / "sql" / "dml").glob("*.sql"))
    assert len(files) > 20
    bad = {str(f.relative_to(ROOT)): p for f in files if (p := dml_problems(f.read_text()))}
    assert not bad, bad


# ---------------------------------------------------------------------------------------------- the checker itself

_SELF_TEST_HEADER = "from psycopg import sql\nfrom include.modelwatch.data import storage\n"
# each snippet's SQL gets a value from outside (m = receive(): a request, a file, a conf), as a route or task would
_F = "def f(cur, rows):\n    m = receive()\n    "
UNSAFE = {
    "f-string": _F + "cur.execute(f\"SELECT * FROM t WHERE m = '{m}'\")\n",
    "%-format": _F + "cur.execute(\"SELECT * FROM t WHERE m = '%s'\" % m)\n",
    ".format": _F + "cur.execute(\"SELECT * FROM t WHERE m = '{}'\".format(m))\n",
    "concatenation": _F + 'cur.execute("SELECT * FROM t WHERE m = \'" + m + "\'")\n',
    "via a variable": _F + 'q = f"DELETE FROM t WHERE m = {m}"\n    cur.execute(q, {})\n',
    "inside sql.SQL": _F + 'cur.execute(sql.SQL(f"DROP TABLE {m}"))\n',
    "executemany %": _F + 'cur.executemany("INSERT INTO %s VALUES (%%s)" % m, rows)\n',
    "copy f-string": _F + 'with cur.copy(f"COPY {m} FROM STDIN") as cp:\n        pass\n',
    "dml text formatted": _F + 'cur.execute(storage.read_sql("dml/x.sql").format(m))\n',
    "via a library wrapper": _F + 'storage.fetch_dicts(cur.connection, f"SELECT {m}")\n',
    "via a wrapper": (
        "def fetch(conn, query, params=None):\n    with conn.cursor() as cur:\n        cur.execute(query, params)\n"
        + _F
        + 'fetch(cur.connection, "SELECT 1 WHERE m = " + m)\n'
    ),
    "via a builder": 'def build(model):\n    return f"SELECT 1 WHERE m = {model}"\n' + _F + "cur.execute(build(m))\n",
    "through two functions": (
        'def build(model):\n    return f"SELECT 1 WHERE m = {model}"\n'
        "def g(cur, model):\n    cur.execute(build(model))\n" + _F + "g(cur, m)\n"
    ),
    "entry point": "def route(cur, model: str):\n    cur.execute(f\"SELECT * FROM t WHERE m = '{model}'\")\n",
}
SAFE = {
    "placeholders": 'def f(cur, model):\n    cur.execute("SELECT * FROM t WHERE m = %(m)s", {"m": model})\n',
    "sql.Identifier": (
        'def f(cur, schema):\n    cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))\n'
    ),
    "sql composition": (
        "def f(cur, cols, where):\n"
        '    q = sql.SQL("SELECT {} FROM t").format(sql.SQL(", ").join(map(sql.Identifier, cols)))\n'
        '    q = q + sql.SQL(" WHERE x = {}").format(sql.Placeholder("x"))\n'
        '    cur.execute(q, {"x": where})\n'
    ),
    "constant columns": (
        '_COLS = ", ".join(("a", "b"))\n'
        'def f(cur, i):\n    cur.execute(f"SELECT {_COLS} FROM t WHERE id = %(i)s", {"i": i})\n'
    ),
    "constant fragment parameter": (
        "def page(cur, columns, model):\n"
        '    cur.execute("SELECT " + columns + " FROM t WHERE m = %(m)s", {"m": model})\n'
        'def g(cur, model):\n    page(cur, "a, b", model)\n'
    ),
    "dml file": 'def f(cur, rows):\n    cur.executemany(storage.read_sql("dml/upsert_bars.sql"), rows)\n',
    "library wrapper": 'def g(conn, m):\n    return storage.fetch_dicts(conn, "SELECT 1 WHERE m = %(m)s", {"m": m})\n',
    "pandas copy": "def f(df):\n    return df.copy()\n",
}
STORAGE = "include/modelwatch/data/storage.py"


def _check_snippet(code: str, path: str = "snippet.py") -> list[Violation]:
    """Violations in ``code`` checked together with the real storage module (whose wrappers it may call)."""
    found = check_sources({STORAGE: (ROOT / STORAGE).read_text(), path: _SELF_TEST_HEADER + code})
    return [v for v in found if v.path == path]


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_checker_catches(case: str) -> None:
    found = _check_snippet(UNSAFE[case])
    assert found, f"{case} not caught"
    assert all(v.path == "snippet.py" and v.line > 2 for v in found), found


@pytest.mark.parametrize("case", sorted(SAFE))
def test_checker_accepts(case: str) -> None:
    assert _check_snippet(SAFE[case]) == []


def test_checker_reports_file_and_line() -> None:
    (v,) = _check_snippet(UNSAFE[".format"], "a/b.py")
    assert (v.path, v.line, v.function) == ("a/b.py", 5, "f")
    assert ".format(m)" in v.reason, v.reason
    assert str(v).startswith("a/b.py:5: f: str.format")


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("SELECT * FROM t WHERE m = %(model)s AND x LIKE 'a%%'", True),
        ("SELECT * FROM t WHERE m = %s", False),
        ("SELECT * FROM {table}", False),
        ("SELECT '%d' -- a comment with %s is fine", False),
        ("SELECT 1 -- %s in a comment", True),
        ("SELECT v #>> '{}' FROM t WHERE a = ANY('{1,2}')", True),
        ("SELECT * FROM t WHERE m = '{model}'", False),
    ],
)
def test_dml_check(text: str, ok: bool) -> None:
    assert (dml_problems(text) == []) is ok
