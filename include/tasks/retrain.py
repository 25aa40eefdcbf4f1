"""Task bodies of ``retrain_gated`` and ``rollback_model``.

The data a run works on is fixed by its claimed trigger: training rows are
the labelled bars whose 5-session horizon closed before the trigger's
``window_end`` (or ``triggered_at``); the out-of-sample period shared by the
candidate and the champion is the last ``eval_sessions`` labelled sessions
before that end, and training stops ``embargo`` sessions (plus the label
horizon) before it. Every step recomputes the same frame from the same
trigger, so a retry reproduces it and nothing large goes through XCom.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any

from include.tasks.common import monitoring_db, run_id

ALGORITHMS = ["lightgbm", "xgboost"]
DEFAULTS: dict[str, Any] = {"eval_sessions": 126, "embargo": 5, "num_boost_round": 150, "shuffle_labels": False,
                            "train_years": 8}


def _conf(context: dict[str, Any]) -> dict[str, Any]:
    p = dict(DEFAULTS)
    for source in (context.get("params") or {}, (context["dag_run"].conf or {}) if context.get("dag_run") else {}):
        p.update({k: v for k, v in source.items() if k in DEFAULTS and v is not None})
    return p


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(row, default=str))


def _model_name() -> str:
    from airflow.sdk import Variable

    return Variable.get("modelwatch_model_name", default="spx_signal")


def _trigger_end(trigger: dict[str, Any]) -> datetime:
    end = trigger.get("window_end") or trigger["triggered_at"]
    dt = end if isinstance(end, datetime) else datetime.fromisoformat(str(end))
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


# ------------------------------------------------------------------ claim


def claim(context: dict[str, Any]) -> dict[str, Any] | None:
    """Create a manual trigger if the run's conf asks for one, then claim one trigger."""
    from include.modelwatch.training import retrain

    conf = (context["dag_run"].conf or {}) if context.get("dag_run") else {}
    rid = run_id(context)
    claimed_at = context["dag_run"].run_after
    with monitoring_db() as conn:
        from include.modelwatch.loop import responses

        run_type = str(getattr(context.get("dag_run"), "run_type", "")).split(".")[-1].lower()
        if run_type == "scheduled":  # the daily 02:00 run evaluates the time-based rules (model age)
            for model in responses.models_with_champion(conn):
                print(responses.evaluate(conn, model, source="schedule", as_of=claimed_at, run_id=rid).summary())
        if "reason" in conf:  # a manual request; refused (task fails) without model or reason
            from airflow.sdk.exceptions import AirflowFailException

            try:
                if not conf.get("model_name"):
                    raise ValueError("a manual retrain needs conf model_name as well as reason")
                tid = responses.create_manual_trigger(conn, conf["model_name"], conf.get("reason") or "",
                                                 retrain_mode=conf.get("retrain_mode", "full"),
                                                 priority=conf.get("priority", "high"),
                                                 requested_by=f"run:{rid}", as_of=claimed_at)
            except ValueError as exc:  # a bad request does not get better on retry
                raise AirflowFailException(f"manual retrain refused: {exc}") from exc
            print(f"manual retrain of {conf['model_name']} requested by this run: trigger {tid}")
        trig = retrain.claim_trigger(conn, run_id=rid, claimed_at=claimed_at, model_name=conf.get("model_name"))
    if trig is None:
        print("no pending retraining trigger (or its model already has a retrain in progress): nothing to do")
        return None
    print(f"claimed trigger {trig['trigger_id']} of {trig['model_name']}: {trig['trigger_type']} / "
          f"{trig['retrain_mode']} / {trig['priority']}: {trig['reason']}")
    return _jsonable(trig)


# ------------------------------------------------------------------ data


def _frames(trigger: dict[str, Any], conf: dict[str, Any]):
    """(train, eval, info) frames for the trigger; deterministic for a trigger and conf."""
    import numpy as np
    import pandas as pd

    from include.modelwatch.ops import bootstrap

    with monitoring_db() as conn:
        from include.modelwatch import registry

        champ = registry.get_alias(conn, trigger["model_name"], registry.CHAMPION)
    end = pd.Timestamp(_trigger_end(trigger).date())
    syms = (champ.params or {}).get("symbols") or list(bootstrap.SYMBOLS)
    bars = bootstrap.load_clean_bars(syms)
    bars = bars[bars["date"] < end]
    panel = bootstrap.feature_panel(bars, end)
    # a label is known only once its horizon closed before the trigger's end
    sessions = np.sort(panel["date"].unique())
    if len(sessions) <= bootstrap.HORIZON:
        raise ValueError(f"{trigger['model_name']}: not enough sessions before {end:%Y-%m-%d} for trigger {trigger['trigger_id']}")
    last_matured = sessions[-bootstrap.HORIZON - 1]
    panel = panel[panel["label"].notna() & (panel["date"] <= last_matured)].reset_index(drop=True)
    labelled = np.sort(panel["date"].unique())
    eval_start = labelled[-int(conf["eval_sessions"])]
    gap = int(conf["embargo"]) + bootstrap.HORIZON
    train_last = labelled[max(0, len(labelled) - int(conf["eval_sessions"]) - gap - 1)]
    train_first = pd.Timestamp(train_last) - pd.DateOffset(years=int(conf["train_years"]))
    if trigger["retrain_mode"] == "incremental" and champ.train_end is not None:
        train_first = pd.Timestamp(champ.train_end) + pd.Timedelta(days=1)
    train = panel[(panel["date"] >= train_first) & (panel["date"] <= train_last)].reset_index(drop=True)
    evalf = panel[panel["date"] >= eval_start].reset_index(drop=True)
    if conf["shuffle_labels"]:
        rng = np.random.default_rng(0)
        train["label"] = rng.permutation(train["label"].to_numpy())
    info = {"train_start": str(train["date"].min().date()) if len(train) else None,
            "train_end": str(pd.Timestamp(train_last).date()), "eval_start": str(pd.Timestamp(eval_start).date()),
            "eval_end": str(pd.Timestamp(labelled[-1]).date()), "champion_version": champ.version,
            "champion_train_end": str(champ.train_end), "embargo_sessions": gap}
    return train, evalf, info, champ


def assemble(trigger: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Build, GX-validate and version the training set of the trigger; fails naming model, column, window."""
    from include.modelwatch.ops import bootstrap
    from include.modelwatch.data import features
    from include.modelwatch.training import retrain
    from include.modelwatch.data.quality import ColumnSpec, FrameSpec, validate_frame

    conf = _conf(context)
    try:
        train, evalf, info, _ = _frames(trigger, conf)
        spec = FrameSpec(columns=tuple([ColumnSpec(c, max_null_share=0.0) for c in features.FEATURE_COLUMNS]
                                       + [ColumnSpec("label", kind="categorical", allowed=tuple(features.CLASSES),
                                                     max_null_share=0.0)]), min_rows=200)
        report = validate_frame(train, spec)
        fp = bootstrap.fingerprint(train)
        per_class = {str(k): int(v) for k, v in train["label"].value_counts().sort_index().items()}
        with monitoring_db() as conn:
            ds = retrain.record_dataset(conn, trigger_id=trigger["trigger_id"], model_name=trigger["model_name"],
                                        fingerprint=fp, date_start=train["date"].min().date(),
                                        date_end=train["date"].max().date(), rows_per_class=per_class,
                                        validation={"success": report.success,
                                                    "failures": [f.describe() for f in report.failures]},
                                        run_id=run_id(context))
        if not report.success:
            raise ValueError(f"{trigger['model_name']}: training set {info['train_start']}..{info['train_end']} "
                             f"fails Great Expectations: " + "; ".join(f.describe() for f in report.failures))
    except Exception as exc:
        _fail_trigger(trigger, context, f"training data: {exc}")
        raise
    print(f"training set {ds}: {len(train)} rows {info['train_start']}..{info['train_end']} per class {per_class} "
          f"(sha256 {fp[:12]}...); out-of-sample {info['eval_start']}..{info['eval_end']} ({len(evalf)} rows), "
          f"embargo {info['embargo_sessions']} sessions")
    return {**trigger, "dataset_id": ds, "n_rows": len(train), "rows_per_class": per_class, **info}


def _fail_trigger(trigger: dict[str, Any], context: dict[str, Any], error: str) -> None:
    from include.modelwatch.training import retrain

    with monitoring_db() as conn:
        try:
            retrain.complete_trigger(conn, trigger["trigger_id"], status="failed", outcome=f"failed: {error}"[:500],
                                     result={"error": error, "run_id": run_id(context)},
                                     completed_at=_trigger_end(trigger))
        except retrain.RetrainError as exc:
            print(f"could not mark trigger {trigger['trigger_id']} failed: {exc}")


# ------------------------------------------------------------------ train + gates


def train_candidate(dataset: dict[str, Any], algorithm: str, context: dict[str, Any]) -> dict[str, Any]:
    """Train one candidate, gate it against the champion on the same out-of-sample rows,
    register it (status 'registered', no alias) and record job and gate rows."""
    import numpy as np

    from include.modelwatch.ops import bootstrap
    from include.modelwatch.data import features
    from include.modelwatch.training import gates, retrain, training
    from include.modelwatch import registry
    from include.modelwatch.metrics import get_metrics

    conf = _conf(context)
    rid = run_id(context)
    model_name, tid = dataset["model_name"], dataset["trigger_id"]
    when = _trigger_end(dataset)
    params = {"num_boost_round": int(conf["num_boost_round"]), "retrain_mode": dataset["retrain_mode"],
              "embargo": int(conf["embargo"]), "eval_sessions": int(conf["eval_sessions"]),
              "shuffle_labels": bool(conf["shuffle_labels"])}
    with monitoring_db() as conn:
        job = retrain.start_job(conn, trigger_id=tid, dataset_id=dataset["dataset_id"], model_name=model_name,
                                algorithm=algorithm, retrain_mode=dataset["retrain_mode"], params=params,
                                started_at=when, run_id=rid)
    t0 = time.perf_counter()
    try:
        train, evalf, info, champ = _frames(dataset, conf)
        cols = list(features.FEATURE_COLUMNS)
        X, y = train[cols], train["label"].astype(str).to_numpy()
        init = None
        with monitoring_db() as conn:
            champ_model = training.deserialize_model(registry.read_artifact(champ))
        if dataset["retrain_mode"] == "incremental" and training.model_algorithm(champ_model) == algorithm:
            init = champ_model
        wf = training.walk_forward_evaluate(X, y, train["date"], algorithm=algorithm, n_splits=3,
                                            horizon=bootstrap.HORIZON, embargo=int(conf["embargo"]),
                                            num_boost_round=int(conf["num_boost_round"]))
        model = training.train_model(algorithm, X, y, init_model=init, num_boost_round=int(conf["num_boost_round"]))
        ye = evalf["label"].astype(str).to_numpy()
        p_cand = training.predict_proba(model, evalf[cols])
        p_champ = training.predict_proba(champ_model, evalf[cols])
        lab_cand, lab_champ = training.predict_labels(p_cand), training.predict_labels(p_champ)
        tm = lambda lab: training.trading_metrics(lab, evalf["r_fwd"].to_numpy(), evalf["threshold"].to_numpy(),
                                                  evalf["date"].to_numpy())
        m_cand, m_champ = tm(lab_cand), tm(lab_champ)
        ov = gate_overrides(model_name)
        results = [
            gates.performance_gate(ye, lab_champ, lab_cand, **ov.get("performance", {})),
            gates.business_gate(m_cand, m_champ, **ov.get("business", {})),
            gates.calibration_gate(ye, p_cand, list(features.CLASSES), **ov.get("calibration", {})),
            gates.stability_gate(p_champ, p_cand, **ov.get("stability", {})),
            gates.data_quality_gate(len(train), dataset["rows_per_class"],
                                    float(train[cols].isna().mean().mean()), **ov.get("data_quality", {})),
        ]
        summary = gates.run_gates(results)
        # the candidate as a full registry version, so drift/performance monitoring work once deployed
        oof = wf.oof
        held = train.loc[oof.index]
        cls = training.classification_metrics(oof["y_true"].to_numpy(), oof["y_pred"].to_numpy(),
                                              oof[[f"proba_{c}" for c in features.CLASSES]].to_numpy())
        trade = training.trading_metrics(oof["y_pred"].to_numpy(), held["r_fwd"].to_numpy(),
                                         held["threshold"].to_numpy(), held["date"].to_numpy())
        baseline = {**bootstrap._finite(cls), **bootstrap._finite(trade)}
        importance = training.feature_importance_gain(model, cols)
        profile = bootstrap.reference_profile(X, training.predict_proba(model, X), importance,
                                              prediction_proba=oof[[f"proba_{c}" for c in features.CLASSES]].to_numpy())
        secs = time.perf_counter() - t0
        acc = float(np.mean(lab_cand == ye))
        with monitoring_db() as conn:
            from include.modelwatch.data.storage import transaction

            # version, baseline, gate rows and job outcome: one transaction, so a
            # failure here leaves no half-registered candidate behind
            with transaction(conn) as cur:
                mv = registry.register_version(
                    conn, model_name=model_name, algorithm=algorithm, artifact=training.serialize_model(model),
                    artifact_dir=_artifact_dir(), features=cols, classes=list(features.CLASSES),
                    params={**(champ.params or {}), **params, "trigger_id": tid},
                    horizon_days=bootstrap.HORIZON, train_start=train["date"].min().date(),
                    train_end=train["date"].max().date(), dataset_fingerprint=bootstrap.fingerprint(train),
                    metrics={"walk_forward": baseline, "out_of_sample": {"candidate": m_cand, "champion": m_champ},
                             "gates": summary.status, "train_rows": len(train)},
                    feature_importance=importance, reference_profile=profile, run_id=rid, cur=cur)
                bootstrap.write_baseline(cur, mv, baseline, held["date"].min().date(), held["date"].max().date(),
                                         len(oof))
                retrain.record_gates(conn, trigger_id=tid, job_id=job, model_name=model_name,
                                     candidate_version=mv.version, champion_version=champ.version, results=results,
                                     evaluated_at=when, run_id=rid, cur=cur)
                retrain.finish_job(conn, job, status="succeeded", duration_s=secs, finished_at=when,
                                   candidate_version=mv.version,
                                   metrics={"oos_accuracy": acc, "gates": summary.status, **info}, cur=cur)
    except Exception as exc:
        with monitoring_db() as conn:
            retrain.finish_job(conn, job, status="failed", duration_s=time.perf_counter() - t0, finished_at=when,
                               error=f"{type(exc).__name__}: {exc}"[:1000])
        raise RuntimeError(f"{model_name} trigger {tid}: {algorithm} training failed: {exc}") from exc
    get_metrics().timing(f"retrain.train_seconds.{model_name}.{algorithm}", secs)
    for r in results:
        print(f"  gate {r.name}: {r.status}: {r.message}")
    print(f"{algorithm} candidate {mv.label}: out-of-sample accuracy {acc:.4f} on {info['eval_start']}..{info['eval_end']}; "
          f"gates -> {summary.status} ({summary.message})")
    return {"algorithm": algorithm, "job_id": job, "version": mv.version, "status": summary.status,
            "failing": list(summary.failing), "borderline": list(summary.borderline), "oos_accuracy": acc,
            "champion_version": champ.version}


def gate_overrides(model_name: str) -> dict[str, dict[str, float]]:
    """Per-model gate thresholds from the variable ``modelwatch_gate_overrides``,
    e.g. ``{"spx_signal": {"business": {"max_dd_limit": 0.4}}}`` (keyword arguments of the gate functions)."""
    from airflow.sdk import Variable

    overrides = json.loads(Variable.get("modelwatch_gate_overrides", default="{}") or "{}")
    return dict(overrides.get(model_name, {}))


def _artifact_dir() -> str:
    import os

    return os.environ.get("MODELWATCH_ARTIFACT_DIR", ".modelwatch/artifacts")


# ------------------------------------------------------------------ decide


def pick_best(dataset: dict[str, Any], candidates: list[dict[str, Any]] | None,
              context: dict[str, Any]) -> dict[str, Any]:
    """The candidate to act on among the jobs that finished (a failed job
    returns nothing): deployable first, then review, then reject; highest
    accuracy within. When every job failed the trigger is marked failed and
    the task fails."""
    from include.modelwatch.training.retrain import pick_candidate

    done = [c for c in (candidates or []) if c]
    if not done:
        _fail_trigger(dataset, context, "every training job failed (see training_jobs)")
        raise RuntimeError(f"{dataset['model_name']} trigger {dataset['trigger_id']}: every training job failed")
    return pick_candidate(done)


def policy_requires_human(model_name: str) -> bool:
    from airflow.sdk import Variable

    policy = json.loads(Variable.get("modelwatch_require_approval", default="{}") or "{}")
    return bool(policy.get(model_name, policy.get("*", False)))


def choose(dataset: dict[str, Any], best: dict[str, Any]) -> str:
    from include.modelwatch.decisions import choose_after_gates
    from include.modelwatch.training.gates import GateSummary

    summary = GateSummary(best["status"], tuple(best["failing"]), tuple(best["borderline"]))
    human = policy_requires_human(dataset["model_name"])
    branch = choose_after_gates(summary, human)
    print(f"{dataset['model_name']} trigger {dataset['trigger_id']}: best candidate v{best['version']} "
          f"({best['algorithm']}) gates {best['status']}; failing {best['failing'] or 'none'}, borderline "
          f"{best['borderline'] or 'none'}; policy requires approval: {human} -> {branch}")
    return branch


def deploy(dataset: dict[str, Any], best: dict[str, Any], context: dict[str, Any], *, approved_by: str | None = None) -> int:
    from include.modelwatch.training import retrain

    conf = (context["dag_run"].conf or {}) if context.get("dag_run") else {}
    alias = conf.get("deploy_alias", "champion")
    why = (f"retrain_gated: trigger {dataset['trigger_id']} ({dataset['trigger_type']}: {dataset['reason']}); "
           f"{best['algorithm']} v{best['version']} passed the gates")
    if approved_by:
        why += f"; approved by {approved_by}"
    with monitoring_db() as conn:
        prev = retrain.deploy(conn, model_name=dataset["model_name"], version=best["version"], alias=alias, reason=why,
                              changed_at=_trigger_end(dataset), run_id=run_id(context), trigger_id=dataset["trigger_id"],
                              outcome="deployed" if alias == "champion" else f"deployed as {alias}",
                              result={"algorithm": best["algorithm"], "gates": best["status"],
                                      "approved_by": approved_by})
    print(f"deployed {dataset['model_name']} v{best['version']} as {alias} (previous v{prev}): {why}")
    _record_feedback(dataset, context)
    return best["version"]


def _record_feedback(dataset: dict[str, Any], context: dict[str, Any]) -> None:
    """Start the trigger's feedback row at once (before-value; a rejection is final);
    performance_daily fills in the after-value as outcomes mature."""
    from include.modelwatch.loop import responses

    with monitoring_db() as conn:
        rows = responses.update_feedback(conn, as_of=_trigger_end(dataset), run_id=run_id(context))
    for r in rows:
        if r["trigger_id"] == dataset["trigger_id"]:
            print(f"feedback: trigger {r['trigger_id']} ({r['rule_name']}): live accuracy before "
                  f"{r['before_value']} (v{r['version_before']}); improved={r['improved']}")


def reject(dataset: dict[str, Any], best: dict[str, Any], context: dict[str, Any], *, why: str | None = None) -> str:
    from include.modelwatch.training import retrain

    failing = best.get("failing") or []
    outcome = f"rejected: {why}" if why else f"rejected: {', '.join(failing) or 'gates'}"
    with monitoring_db() as conn:
        retrain.complete_trigger(conn, dataset["trigger_id"], status="done", outcome=outcome,
                                 result={"candidate_version": best["version"], "algorithm": best["algorithm"],
                                         "failing_gates": failing, "previous_version": best["champion_version"],
                                         "run_id": run_id(context)},
                                 completed_at=_trigger_end(dataset))
    print(f"{dataset['model_name']} trigger {dataset['trigger_id']}: candidate v{best['version']} {outcome}; "
          f"failing gates: {', '.join(failing) or 'none'}; champion v{best['champion_version']} stays")
    _record_feedback(dataset, context)
    return outcome


def mark_awaiting(dataset: dict[str, Any], best: dict[str, Any], context: dict[str, Any]) -> None:
    from include.modelwatch.training import retrain

    with monitoring_db() as conn:
        retrain.complete_trigger(conn, dataset["trigger_id"], status="claimed", outcome="awaiting_approval",
                                 result={"candidate_version": best["version"], "borderline_gates": best["borderline"],
                                         "run_id": run_id(context)},
                                 completed_at=_trigger_end(dataset))


def apply_approval(dataset: dict[str, Any], best: dict[str, Any], approved: bool, context: dict[str, Any]) -> str:
    """Deploy or reject after the human's answer. ``human_decision`` (HITLBranchOperator)
    branches here; who answered and when is kept in its HITL detail (Airflow UI / API)."""
    who = f"the reviewer of {run_id(context)} (human_decision)"
    if approved:
        deploy(dataset, best, context, approved_by=who)
        return "deployed"
    return reject(dataset, best, context, why=f"not approved by {who}")


# ------------------------------------------------------------------ rollback_model


def rollback_plan(context: dict[str, Any]) -> dict[str, Any]:
    """Manual (conf ``model_name``, ``target_version``, ``reason``) or automatic: the champion
    deployed last is compared with the previous one on daily live accuracy
    (``live_performance_daily``) over ``period_days`` before / after the change."""
    from datetime import timedelta

    from include.modelwatch import registry
    from include.modelwatch.training import retrain
    from include.modelwatch.decisions import should_rollback

    conf = (context["dag_run"].conf or {}) if context.get("dag_run") else {}
    model_name = conf.get("model_name") or _model_name()
    as_of = context.get("logical_date") or context["dag_run"].run_after
    with monitoring_db() as conn:
        current = registry.resolve_alias(conn, model_name, registry.CHAMPION)
        if conf.get("target_version") is not None:
            target = int(conf["target_version"])
            reason = str(conf.get("reason") or "").strip()
            if not reason:  # a bad request does not get better on retry
                from airflow.sdk.exceptions import AirflowFailException

                raise AirflowFailException(f"{model_name}: a manual rollback to v{target} needs conf 'reason'")
            return {"model_name": model_name, "target_version": target, "current_version": current,
                    "reason": f"manual: {reason}", "rollback": True, "manual": True, "as_of": str(as_of)}
        change = retrain.last_champion_change(conn, model_name, as_of)
        if not change or change["from_version"] is None:
            print(f"{model_name}: champion v{current} has no predecessor; nothing to compare")
            return {"model_name": model_name, "rollback": False, "as_of": str(as_of)}
        period = timedelta(days=int(conf.get("period_days", 30)))
        at = change["changed_at"]
        new = retrain.live_metric_series(conn, model_name, change["to_version"], at, min(as_of, at + period))
        prev = retrain.live_metric_series(conn, model_name, change["from_version"], at - period, at)
    worse, evidence = should_rollback(new, prev, min_days=int(conf.get("min_days", 10)))
    print(f"{model_name}: v{change['to_version']} (since {at:%Y-%m-%d}) vs v{change['from_version']}: {evidence['reason']}")
    return {"model_name": model_name, "target_version": change["from_version"], "current_version": change["to_version"],
            "reason": f"automatic: live accuracy significantly worse ({evidence['reason']})", "rollback": worse,
            "evidence": _jsonable(evidence), "as_of": str(as_of)}


def do_rollback(plan: dict[str, Any], context: dict[str, Any]) -> int:
    from include.modelwatch.training import retrain

    with monitoring_db() as conn:
        prev = retrain.rollback(conn, model_name=plan["model_name"], target_version=int(plan["target_version"]),
                                reason=plan["reason"], changed_at=datetime.fromisoformat(plan["as_of"]),
                                run_id=run_id(context))
    print(f"{plan['model_name']}: champion restored to v{plan['target_version']} (was v{prev}); {plan['reason']}")
    return int(plan["target_version"])
