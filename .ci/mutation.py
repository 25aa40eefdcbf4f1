#!/usr/bin/env python
"""Single-point AST mutation testing of the pure decision modules.

    .venv/bin/python .ci/mutation.py [--min 0.90] [--jobs 2] [--list] [MODULE[=TESTFILE] ...]

Each mutant changes exactly one thing in one module:

* comparisons   ``<`` <-> ``<=``, ``>`` <-> ``>=``, ``==`` <-> ``!=`` (one operator of a chain);
* booleans      ``and`` <-> ``or``;
* constants     numbers: ``0`` -> ``1``, ``1`` -> ``0``, any other ``n`` -> ``n + 1``;
                ``True`` <-> ``False``; a non-empty string -> ``''``;
* returns       ``return <expr>`` -> ``return None``.

Docstrings, annotations and the literal text of f-strings are not mutated
(the expressions inside an f-string are). The mutant is the module's AST with
the one change, unparsed into a temp directory; the real file is never
touched. A forked child installs an import hook that loads the module's name
from the mutant file and runs ``pytest -x -q --noconftest --assert=plain -p no:cacheprovider``
on the module's unit-test file only (``--noconftest``: tests/conftest.py starts
an embedded PostgreSQL that unit tests do not need). The mutant is *killed* if
the tests fail, error (also at import/collection) or time out; it *survived*
if they pass. Before the mutants, the unmutated unparsed module must pass its
tests (it sets the time-out: 4x its run time + 5 s, at least 10 s).

Per module it prints killed/total and the score, lists the survivors (line,
original -> mutant) and exits 1 if any module's score (killed / total) is below
``--min``. Survivors that are equivalent mutants (same behaviour, cannot be
killed by any test) are listed with a reason in ``.ci/mutation-equivalents.txt``
and marked ``[equivalent]`` in the output; they still count as survivors.
"""

from __future__ import annotations

import argparse
import ast
import importlib.abc
import importlib.util
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENTS_FILE = ROOT / ".ci" / "mutation-equivalents.txt"

#: module -> its unit tests (the defaults of ``make mutation``).
DEFAULT_TESTS: dict[str, str] = {
    "include/modelwatch/decisions.py": "tests/unit/test_decisions.py",
    "include/modelwatch/loop/rules.py": "tests/unit/test_rules.py",
    "include/modelwatch/training/gates.py": "tests/unit/test_gates.py",
    "include/modelwatch/ab/decision.py": "tests/unit/test_ab_decision.py",
    "include/modelwatch/ab/endings.py": "tests/unit/test_ab_decision.py",
}

#: Imported once in the parent before forking, so each mutant run only imports the
#: module under test and its test file. Never one of the mutated modules.
WARM_IMPORTS = (
    "numpy",
    "pandas",
    "scipy.stats",
    "scipy.special",
    "pytest",
    "_pytest.python",
    "_pytest.assertion.rewrite",
    "include.modelwatch.vocabulary",
    "include.modelwatch.monitoring.drift",
    "include.modelwatch.monitoring.performance",
)

#: ``--noconftest``: no embedded PostgreSQL; ``--assert=plain``: no assertion rewriting (a failing
#: assert still fails); with PYTEST_DISABLE_PLUGIN_AUTOLOAD no third-party plugin (hypothesis alone
#: costs more than the tests) and no entry-point scan.
PYTEST_ARGS = ["-x", "-q", "-p", "no:cacheprovider", "--noconftest", "--assert=plain"]

_COMPARE_SWAP: dict[type, type] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
}
_BOOL_SWAP: dict[type, type] = {ast.And: ast.Or, ast.Or: ast.And}


def _short(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


@dataclass(frozen=True)
class Mutant:
    index: int
    line: int
    kind: str  # compare | boolop | constant | return
    original: str
    mutated: str
    source_line: str

    def describe(self) -> str:
        return f"L{self.line:<4} {self.kind:<8} {self.original} -> {self.mutated}"


class Mutator(ast.NodeTransformer):
    """Enumerates the mutation points of a module (``target=None``) or applies the
    ``target``-th one. Both walk the same tree in the same order."""

    def __init__(self, source: str, target: int | None = None) -> None:
        self.source = source
        self.lines = source.splitlines()
        self.target = target
        self.count = 0
        self.found: list[Mutant] = []

    # ----------------------------------------------------------------- helpers
    def _point(self, node: ast.AST, kind: str, original: str, mutated: str) -> bool:
        """Register a mutation point; True if it is the one to apply."""
        k = self.count
        self.count += 1
        line = getattr(node, "lineno", 0)
        if self.target is None:
            src_line = self.lines[line - 1].strip() if 0 < line <= len(self.lines) else ""
            self.found.append(Mutant(k, line, kind, _short(original), _short(mutated), src_line))
            return False
        return k == self.target

    def _segment(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.source, node) or ast.unparse(node)

    def _body(self, body: list[ast.stmt]) -> list[ast.stmt]:
        start = 0
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            start = 1  # docstring
        return body[:start] + [self.visit(s) for s in body[start:]]

    # ----------------------------------------------------------------- scopes / skipped parts
    def visit_Module(self, node: ast.Module) -> ast.AST:
        node.body = self._body(node.body)
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        node.bases = [self.visit(b) for b in node.bases]
        node.body = self._body(node.body)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.AST:
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        node.args = self.visit(node.args)  # defaults; arg annotations are skipped in visit_arg
        node.body = self._body(node.body)
        return node  # return annotation skipped

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_arg(self, node: ast.arg) -> ast.AST:
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        if node.value is not None:
            node.value = self.visit(node.value)
        return node

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        for part in node.values:
            if isinstance(part, ast.FormattedValue):
                part.value = self.visit(part.value)  # the expression, not its text or format spec
        return node

    # ----------------------------------------------------------------- mutation points
    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        for i, op in enumerate(node.ops):
            new = _COMPARE_SWAP.get(type(op))
            if new is None:
                continue
            original = self._segment(node)
            ops = list(node.ops)
            ops[i] = new()
            mutated = ast.unparse(ast.Compare(left=node.left, ops=ops, comparators=node.comparators))
            if self._point(node, "compare", original, mutated):
                node.ops = ops
        return node

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        self.generic_visit(node)
        new = _BOOL_SWAP[type(node.op)]()
        original = self._segment(node)
        mutated = ast.unparse(ast.BoolOp(op=new, values=node.values))
        if self._point(node, "boolop", original, mutated):
            node.op = new
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        v = node.value
        if isinstance(v, bool):
            new: object = not v
        elif isinstance(v, (int, float)):
            new = 1 if v == 0 else 0 if v == 1 else v + 1
            if isinstance(v, float):
                new = float(new)
        elif isinstance(v, str) and v:
            new = ""
        else:
            return node
        if self._point(node, "constant", repr(v), repr(new)):
            return ast.copy_location(ast.Constant(value=new), node)
        return node

    def visit_Return(self, node: ast.Return) -> ast.AST:
        self.generic_visit(node)
        if node.value is None or (isinstance(node.value, ast.Constant) and node.value.value is None):
            return node
        if self._point(node, "return", "return " + self._segment(node.value), "return None"):
            node.value = None
        return node


def enumerate_mutants(source: str) -> list[Mutant]:
    m = Mutator(source)
    m.visit(ast.parse(source))
    return m.found


def mutant_source(source: str, index: int | None) -> str:
    """The module with mutation ``index`` applied (``None``: unmutated, unparsed the same way)."""
    tree = ast.parse(source)
    if index is not None:
        m = Mutator(source, target=index)
        tree = m.visit(tree)
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def load_equivalents(path: Path = EQUIVALENTS_FILE) -> dict[tuple[str, str, str], str]:
    """``module :: source line :: original -> mutant :: reason`` lines -> reason."""
    out: dict[tuple[str, str, str], str] = {}
    if not path.exists():
        return out
    for raw in path.read_text().splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in raw.split(" :: ")]
        if len(parts) != 4:
            raise SystemExit(f"{path}: bad line (want 'module :: source line :: change :: reason'): {raw!r}")
        module, line, change, reason = parts
        out[(module, " ".join(line.split()), " ".join(change.split()))] = reason
    return out


# --------------------------------------------------------------------------- running


class _Overlay(importlib.abc.MetaPathFinder):
    """Loads ``name`` from ``path`` instead of from the source tree."""

    def __init__(self, name: str, path: str) -> None:
        self.name, self.path = name, path

    def find_spec(self, fullname, path=None, target=None):  # type: ignore[no-untyped-def]
        if fullname == self.name:
            return importlib.util.spec_from_file_location(fullname, self.path)
        return None


def _module_name(rel: str) -> str:
    return rel[:-3].replace("/", ".")


def _child(module: str, mutant_path: str, test_file: str, timeout: float, verbose: bool) -> None:
    """In the forked child: shadow the module, run its tests, exit with pytest's code."""
    try:
        signal.alarm(int(timeout) + 1)
        if not verbose:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
        sys.dont_write_bytecode = True
        sys.meta_path.insert(0, _Overlay(module, mutant_path))
        import pytest

        rc = pytest.main(PYTEST_ARGS + ["--rootdir", str(ROOT), test_file])
        os._exit(int(rc))
    except BaseException:  # noqa: BLE001 - anything escaping pytest kills the mutant
        os._exit(70)


@dataclass
class Job:
    module: str
    test_file: str
    index: int | None  # None = unmutated baseline
    path: str
    timeout: float
    started: float = 0.0


@dataclass
class Report:
    module: str
    test_file: str
    mutants: list[Mutant]
    baseline_seconds: float = 0.0
    outcome: dict[int, str] = field(default_factory=dict)  # index -> killed | survived | timeout | error:rc

    @property
    def killed(self) -> int:
        return sum(1 for o in self.outcome.values() if o != "survived")

    @property
    def score(self) -> float:
        return self.killed / len(self.mutants) if self.mutants else 1.0


def _run_jobs(jobs: list[Job], n_parallel: int, verbose: bool, on_done) -> None:  # type: ignore[no-untyped-def]
    """Fork up to ``n_parallel`` children at a time; call ``on_done(job, outcome)``."""
    queue = list(jobs)
    running: dict[int, Job] = {}
    try:
        while queue or running:
            while queue and len(running) < n_parallel:
                job = queue.pop(0)
                job.started = time.monotonic()
                pid = os.fork()
                if pid == 0:
                    _child(_module_name(job.module), job.path, job.test_file, job.timeout, verbose)
                running[pid] = job
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                now = time.monotonic()
                for p, job in list(running.items()):
                    if now - job.started > job.timeout:
                        os.kill(p, signal.SIGKILL)
                        os.waitpid(p, 0)
                        del running[p]
                        on_done(job, "timeout", now - job.started)
                time.sleep(0.01)
                continue
            job = running.pop(pid)
            elapsed = time.monotonic() - job.started
            if os.WIFSIGNALED(status):
                outcome = "timeout" if os.WTERMSIG(status) == signal.SIGALRM else f"error:signal{os.WTERMSIG(status)}"
            else:
                rc = os.WEXITSTATUS(status)
                outcome = {0: "survived", 1: "killed", 2: "killed"}.get(rc, f"error:rc{rc}")
            on_done(job, outcome, elapsed)
    finally:
        for p in running:  # interrupted: stop the children this run started
            try:
                os.kill(p, signal.SIGKILL)
                os.waitpid(p, 0)
            except OSError:
                pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("modules", nargs="*", help="module path (optionally MODULE=TESTFILE); default: the three modules")
    ap.add_argument("--min", type=float, default=0.90, help="minimum score per module (default 0.90)")
    ap.add_argument("--jobs", type=int, default=2, help="parallel test runs (default 2)")
    ap.add_argument("--list", action="store_true", help="only list the mutants")
    ap.add_argument("--verbose", action="store_true", help="show pytest output of every run")
    args = ap.parse_args(argv)

    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    targets: list[tuple[str, str]] = []
    for spec in args.modules or list(DEFAULT_TESTS):
        module, _, test_file = spec.partition("=")
        test_file = test_file or DEFAULT_TESTS.get(module, "")
        if not test_file:
            ap.error(f"no unit-test file known for {module}; pass {module}=tests/unit/test_x.py")
        for p in (module, test_file):
            if not (ROOT / p).is_file():
                ap.error(f"{p}: no such file")
        targets.append((module, test_file))

    reports = {m: Report(m, t, enumerate_mutants((ROOT / m).read_text())) for m, t in targets}
    if args.list:
        for r in reports.values():
            print(f"{r.module}: {len(r.mutants)} mutants")
            for mu in r.mutants:
                print(f"  #{mu.index:<4}{mu.describe()}")
        return 0

    for name in WARM_IMPORTS:
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - only a warm-up; the child imports what it needs
            pass
    mutated_names = {_module_name(m) for m, _ in targets}
    leaked = mutated_names & set(sys.modules)
    assert not leaked, f"warm-up imported a module under test: {leaked}"

    t0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="modelwatch-mutation-"))
    try:

        def write(module: str, index: int | None) -> str:
            d = tmp / f"{Path(module).stem}-{'base' if index is None else index}"
            d.mkdir()
            path = d / Path(module).name
            path.write_text(mutant_source((ROOT / module).read_text(), index))
            return str(path)

        # 1. the unmutated (unparsed) modules must pass; their run time sets the time-outs
        baseline_failed: list[str] = []

        def on_baseline(job: Job, outcome: str, elapsed: float) -> None:
            reports[job.module].baseline_seconds = elapsed
            if outcome != "survived":
                baseline_failed.append(f"{job.module}: {outcome}")

        _run_jobs([Job(m, t, None, write(m, None), 300.0) for m, t in targets], args.jobs, args.verbose, on_baseline)
        if baseline_failed:
            print("the unit tests fail on the unmutated modules (fix them first; rerun with --verbose):")
            print("\n".join("  " + b for b in baseline_failed))
            return 2

        # 2. every mutant
        jobs = []
        for m, t in targets:
            timeout = max(10.0, 4 * reports[m].baseline_seconds + 5)
            jobs += [Job(m, t, mu.index, write(m, mu.index), timeout) for mu in reports[m].mutants]
        total = len(jobs)
        done = 0

        def on_mutant(job: Job, outcome: str, elapsed: float) -> None:
            nonlocal done
            done += 1
            reports[job.module].outcome[job.index] = outcome  # type: ignore[index]
            if sys.stdout.isatty():
                print(f"\r{done}/{total} mutants run", end="", flush=True)

        _run_jobs(jobs, args.jobs, args.verbose, on_mutant)
        if sys.stdout.isatty():
            print()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # 3. report
    equivalents = load_equivalents()
    failing = []
    print(
        f"\nmutation testing: {sum(len(r.mutants) for r in reports.values())} mutants "
        f"in {time.monotonic() - t0:.0f}s on {args.jobs} processes\n"
    )
    for r in reports.values():
        survivors = [mu for mu in r.mutants if r.outcome.get(mu.index) == "survived"]
        errors = sum(1 for o in r.outcome.values() if o.startswith("error") or o == "timeout")
        n_eq = 0
        lines = []
        for mu in survivors:
            reason = equivalents.get((r.module, " ".join(mu.source_line.split()), f"{mu.original} -> {mu.mutated}"))
            n_eq += reason is not None
            lines.append(f"    {mu.describe()}" + (f"   [equivalent: {reason}]" if reason else ""))
        ok = r.score >= args.min
        failing += [] if ok else [r.module]
        print(f"{r.module} ({r.test_file}, baseline {r.baseline_seconds:.1f}s)")
        print(
            f"  killed {r.killed}/{len(r.mutants)}  score {100 * r.score:.1f}%  "
            f"({errors} by error/time-out; {len(survivors)} survived, {n_eq} listed as equivalent)"
            f"{'' if ok else f'  BELOW --min {args.min:.2f}'}"
        )
        if lines:
            print("  survivors:")
            print("\n".join(lines))
        print()
    if failing:
        print(f"FAIL: below {args.min:.0%}: {', '.join(failing)}")
        return 1
    print(f"OK: every module kills at least {args.min:.0%} of its mutants")
    return 0


if __name__ == "__main__":
    sys.exit(main())
