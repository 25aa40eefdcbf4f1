"""``python -m include.modelwatch external ...``: models ModelWatch did not train.

``external register --spec SPEC --reference FILE`` registers a model (or its next version) from its spec (YAML or
JSON, :mod:`include.modelwatch.external.schema`) and a reference frame of its validation-period predictions;
``external list`` shows the monitored models with their origin, owner and champion; ``external batches`` the
newest batches ``ingest_predictions`` loaded or quarantined, with the reason; ``external example --out DIR`` writes a
synthetic model's spec, reference frame and feed files to try it all out.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any


def _register(args: argparse.Namespace) -> int:
    from include.modelwatch.data import storage
    from include.modelwatch.external import register, schema

    try:
        spec = schema.load_spec(args.spec)
        with storage.session(args.uri) as conn:
            done = register.register_external(conn, spec, args.reference, alias=args.alias, by=args.who(args))
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: nothing registered: {exc}", file=sys.stderr)
        return 1
    info = register.describe(done)
    was = f" (was v{done.previous})" if done.previous is not None else ""
    print(
        f"registered {done.model.label} ({len(info['features'])} features, classes {info['classes']}) from "
        f"{info['reference_rows']} reference rows {info['reference_period'][0]}..{info['reference_period'][1]}; "
        f"{done.alias} -> v{done.model.version}{was}"
    )
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    return 0


def _list(args: argparse.Namespace) -> int:
    from include.modelwatch import registry
    from include.modelwatch.data import storage

    with storage.session(args.uri) as conn:
        models = registry.monitored_models(conn)
    for m in models:
        champ = f"v{m['champion']}" if m["champion"] is not None else "-"
        print(f"{m['model_name']:<24} {m['origin']:<9} champion {champ:<5} owner {m['owner'] or '-'}")
    if not models:
        print("no models")
    return 0


def _batches(args: argparse.Namespace) -> int:
    from include.modelwatch.data import storage
    from include.modelwatch.external import feed

    with storage.session(args.uri) as conn:
        rows = feed.recent_batches(conn, args.model, args.limit)
    for b in rows:
        ver = f" v{b['model_version']}" if b["model_version"] is not None else ""
        what = b["error"] if b["status"] == "quarantined" else f"{b['n_written']} of {b['n_rows']} row(s)"
        print(
            f"{b['batch_id']:>6}  {b['ingested_at']:%Y-%m-%d %H:%M}  {b['kind']:<11} {b['status']:<11} "
            f"{b['model_name'] or '?'}{ver}  {b['name']}: {what}"
        )
    if not rows:
        print("no batches")
    return 0


def _example(args: argparse.Namespace) -> int:
    from pathlib import Path

    from include.modelwatch.external import example

    files = example.write_example(Path(args.out))
    for what, path in files.items():
        print(f"{what:<14} {path}")
    return 0


def add_parsers(
    groups: Any,
    person: Callable[[argparse.ArgumentParser], argparse.ArgumentParser],
    uri: Callable[[argparse.ArgumentParser], argparse.ArgumentParser],
    who: Callable[[argparse.Namespace], str],
) -> None:
    """The ``external`` command group (``person`` adds --by/--at/--uri, ``uri`` adds --uri)."""
    ex = groups.add_parser("external", help="models ModelWatch did not train").add_subparsers(dest="cmd", required=True)
    p = person(ex.add_parser("register", help="register an external model (or its next version) from a reference"))
    p.add_argument("--spec", required=True, help="YAML or JSON: name, classes, features, owner, baseline, ...")
    p.add_argument("--reference", required=True, help="Parquet or CSV of validation-period predictions")
    p.add_argument("--alias", default="champion", choices=("champion", "challenger"))
    p.add_argument("--json", action="store_true", help="also print the registration (schema, ranges) as JSON")
    p.set_defaults(func=_register, who=who)
    p = ex.add_parser("example", help="write an example model's spec, reference and feed files (to try it out)")
    p.add_argument("--out", required=True, help="directory to write them to")
    p.set_defaults(func=_example)
    p = uri(ex.add_parser("list", help="monitored models: origin, owner, champion"))
    p.set_defaults(func=_list)
    p = uri(ex.add_parser("batches", help="the newest ingested or quarantined batches, with the reason"))
    p.add_argument("--model")
    p.add_argument("--limit", type=int, default=30)
    p.set_defaults(func=_batches)
