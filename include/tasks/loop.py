"""Task bodies of the closed loop: evaluate the response rules after a monitor ran."""

from __future__ import annotations

from typing import Any

from include.tasks.common import monitoring_db, run_id, window


def respond(source: str, context: dict[str, Any]) -> dict[str, Any]:
    """Evaluate the rules of ``source`` for every model with a champion, at the window's end.

    Prints each decision (fired, upgraded, suppressed, cancelled) with its
    reason; after ``performance`` also refreshes the retrain feedback. Returns
    counts per action and whether any trigger changed (the asset event).
    """
    from include.modelwatch.loop import responses
    from include.modelwatch.metrics import get_metrics

    start, end = window(context)
    rid = run_id(context)
    with monitoring_db() as conn:
        counts: dict[str, int] = {}
        changed: list[int] = []
        models = responses.models_with_champion(conn)
        for model in models:
            ev = responses.evaluate(conn, model, source=source, as_of=end, run_id=rid, window=(start, end))
            print(ev.summary())
            if ev.changed and ev.trigger_id is not None:
                changed.append(ev.trigger_id)
            for a in ev.actions:
                if not ev.replayed:
                    counts[a["action"]] = counts.get(a["action"], 0) + 1
                    get_metrics().incr("loop.actions", source, a["action"])
        feedback = responses.update_feedback(conn, as_of=end, run_id=rid) if source == "performance" else []
        pending = responses.pending_count(conn)
    get_metrics().gauge("loop.pending_triggers", pending)
    for row in feedback:
        print(f"feedback: trigger {row['trigger_id']} ({row['rule_name']}, {row['outcome']}): accuracy "
              f"{row['before_value']} (v{row['version_before']}) -> {row['after_value']} (v{row['version_after']}, "
              f"n={row['n_after']}), improved={row['improved']}")
    print(f"closed loop ({source}, window {start.isoformat()} .. {end.isoformat()}): "
          f"{', '.join(f'{v} {k}' for k, v in sorted(counts.items())) or 'no decisions'}; "
          f"{pending} pending trigger(s) in total")
    return {"source": source, "models": models, "actions": counts, "changed_triggers": changed,
            "pending": pending, "feedback_rows": len(feedback)}


def announce(result: dict[str, Any]) -> str:
    """Let the trigger-table Asset event through only when a trigger changed."""
    from airflow.sdk.exceptions import AirflowSkipException

    if not result or not result.get("changed_triggers"):
        raise AirflowSkipException("no trigger created, upgraded or cancelled: retrain_gated is not woken")
    return f"triggers changed: {result['changed_triggers']}"


