"""``python -m include.modelwatch label ...``: the active-learning queue from a terminal.

``label list`` (by priority, then age), ``label set ID BUY|SELL|HOLD --note``, ``label skip ID``, ``label stats``
(counts and the label/outcome agreement per labeller against the model) and ``label settings MODEL [k=v ...]``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any


def _list(args: argparse.Namespace) -> int:
    from include.modelwatch.active_learning import store
    from include.modelwatch.data import storage

    status = None if args.status == "all" else args.status
    with storage.session(args.uri) as conn:
        items = store.list_items(conn, model_name=args.model, status=status, limit=args.limit)
    for it in items:
        probs = " ".join(f"{k} {float(v):.2f}" for k, v in it.probabilities.items())
        answered = f"  {it.manual_label or '-'} by {it.labelled_by}" if it.labelled_by else ""
        print(
            f"{it.item_id:>6}  p{it.priority}  {it.model_name} v{it.model_version}  {it.symbol:<6} {it.ts:%Y-%m-%d}  "
            f"said {it.predicted_label:<4} conf {it.confidence:.3f}  ({probs})  {it.status}{answered}"
        )
    if not items:
        print(f"no {status or ''} items".replace("  ", " "))
    return 0


def _answer(args: argparse.Namespace, what: Callable[[Any], Any]) -> int:
    from include.modelwatch.active_learning import store
    from include.modelwatch.data import storage

    with storage.session(args.uri) as conn:
        try:
            it = what(conn)
        except store.LabelError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(f"{it.label}: {it.manual_label or 'skipped'} by {it.labelled_by}")
    return 0


def _set(args: argparse.Namespace) -> int:
    from include.modelwatch.active_learning import store

    return _answer(
        args,
        lambda c: store.label(c, args.item_id, args.label, by=args.who(args), at=args.when(args.at), note=args.note),
    )


def _skip(args: argparse.Namespace) -> int:
    from include.modelwatch.active_learning import store

    return _answer(
        args, lambda c: store.skip(c, args.item_id, by=args.who(args), at=args.when(args.at), note=args.note)
    )


def _stats(args: argparse.Namespace) -> int:
    from include.modelwatch.active_learning import store
    from include.modelwatch.data import storage

    with storage.session(args.uri) as conn:
        counts = store.queue_counts(conn, args.model)
        agree = store.agreement(conn, args.model)
    for c in counts:
        print(
            f"{c['model_name']}: pending {c['pending']}, labelled {c['labelled']}, skipped {c['skipped']}, processed "
            f"{c['processed']}, expired {c['expired']}; oldest pending {c['oldest_pending'] or '-'}"
        )
    for a in agree:
        who = a["labelled_by"] or "all labellers"
        flag = "  (below the model)" if a["human_agreement"] < a["model_agreement"] else ""
        print(
            f"  {who}: {a['items']} matured item(s), human label = outcome {a['human_agreement']:.3f}, model "
            f"{a['model_agreement']:.3f}{flag}"
        )
    if not counts:
        print("the queue is empty")
    return 0


def _settings(args: argparse.Namespace) -> int:
    from include.modelwatch.active_learning import store
    from include.modelwatch.active_learning.band import SettingsError
    from include.modelwatch.data import storage

    with storage.session(args.uri) as conn:
        try:
            if args.changes:
                pairs = dict(c.split("=", 1) if "=" in c else (c, "") for c in args.changes)
                s = store.set_settings(conn, args.model, pairs, by=args.who(args), at=args.when(args.at))
            else:
                s = store.settings_for(conn, args.model)
        except SettingsError as exc:
            print(f"error: nothing changed: {exc}", file=sys.stderr)
            return 1
    print(f"{args.model}: " + ", ".join(f"{k}={v}" for k, v in s.as_dict().items()))
    return 0


def add_parsers(
    groups: Any,
    person: Callable[[argparse.ArgumentParser], argparse.ArgumentParser],
    uri: Callable[[argparse.ArgumentParser], argparse.ArgumentParser],
    who: Callable[[argparse.Namespace], str],
    when: Callable[[str | None], Any],
) -> None:
    """The ``label`` command group (``person`` adds --by/--at/--uri, ``uri`` adds --uri)."""
    lab = groups.add_parser("label", help="the active-learning queue").add_subparsers(dest="cmd", required=True)
    p = uri(lab.add_parser("list", help="queue items by priority, then age"))
    p.add_argument("--model")
    p.add_argument(
        "--status", default="pending", choices=("pending", "labelled", "skipped", "processed", "expired", "all")
    )
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=_list)
    p = person(lab.add_parser("set", help="label a pending item"))
    p.add_argument("item_id", type=int)
    p.add_argument("label", choices=("BUY", "SELL", "HOLD", "buy", "sell", "hold"))
    p.add_argument("--note")
    p.set_defaults(func=_set, who=who, when=when)
    p = person(lab.add_parser("skip", help="skip a pending item (it leaves the queue unlabelled)"))
    p.add_argument("item_id", type=int)
    p.add_argument("--note")
    p.set_defaults(func=_skip, who=who, when=when)
    p = uri(lab.add_parser("stats", help="queue counts and label/outcome agreement per labeller vs the model"))
    p.add_argument("--model")
    p.set_defaults(func=_stats)
    p = person(lab.add_parser("settings", help="show or change a model's band, weight and rules (k=v ...)"))
    p.add_argument("model")
    p.add_argument(
        "changes",
        nargs="*",
        help="enabled=, band_max=, priority2_max=, priority3_max=, label_weight=, on_disagreement=human|outcome|drop, "
        "expire_after_days=, batch_size=",
    )
    p.set_defaults(func=_settings, who=who, when=when)
