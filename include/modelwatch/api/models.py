"""Typed view models of the monitoring API (pydantic v2). Field names are what the API returns; the
queries select columns under exactly these names (``model_name AS model``), so a row validates as is.

Every model forbids unknown fields: a query and its model cannot drift apart silently.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class View(BaseModel):
    """Base of every view model: immutable, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Page(BaseModel, Generic[T]):
    """One page of a list: ``items`` (newest first), ``total`` rows matching the filters, the paging used."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    items: list[T]
    total: int
    limit: int
    offset: int


# --------------------------------------------------------------------------- registry and health


class HealthRow(View):
    """Latest health of a model version (view ``model_health_current``)."""

    model: str
    version: int
    window_end: datetime
    status: str  # healthy | warning | critical
    reasons: list[Any] = Field(default_factory=list)
    drift_score: float | None
    perf_metric: str | None
    perf_rel_drop: float | None  # positive = live below baseline
    perf_degraded: bool | None
    dq_failures: int
    model_age_days: int | None
    aliases: list[str] = Field(default_factory=list)


class VersionSummary(View):
    version: int
    algorithm: str
    status: str  # candidate | active | retired | rejected
    train_start: date | None
    train_end: date | None
    created_at: datetime
    aliases: list[str] = Field(default_factory=list)


class ModelSummary(View):
    model: str
    origin: str = "native"  # native (trained by ModelWatch) | external (registered from a reference frame)
    owner: str | None = None  # who receives an external model's retrain requests
    versions: list[VersionSummary]  # newest first
    aliases: dict[str, int]  # alias -> version


class AliasChange(View):
    id: int
    model: str
    alias: str
    from_version: int | None
    to_version: int | None
    changed_at: datetime
    reason: str
    run_id: str | None
    recorded_at: datetime


# --------------------------------------------------------------------------- drift


class DriftWindow(View):
    model: str
    version: int
    window_start: datetime
    window_end: datetime
    status: str  # evaluated | empty | data_quality_failed
    n_rows: int
    drift_score: float | None
    level: str | None  # none | warning | critical
    n_drifted: int
    drifted: bool
    alert_state: str | None
    run_id: str | None


class DriftFeatureResult(View):
    kind: str  # feature | prediction | concept
    feature: str
    test: str
    statistic: float | None
    p_value: float | None
    severity: float
    drifted: bool
    n_current: int | None
    details: dict[str, Any] = Field(default_factory=dict)


class DriftWindowDetail(DriftWindow):
    summary: dict[str, Any] = Field(default_factory=dict)
    results: list[DriftFeatureResult]  # drifted first, then by severity


# --------------------------------------------------------------------------- performance


class PerformanceComparison(View):
    comparison_id: int
    model: str
    version: int
    window_start: datetime
    window_end: datetime
    metric: str
    is_primary: bool
    live_value: float | None
    baseline_value: float | None
    rel_diff: float | None
    ci_low: float | None
    ci_high: float | None
    rel_ci_low: float | None
    rel_ci_high: float | None
    threshold: float | None
    tolerance_rel: float
    degraded: bool | None
    status: str  # ok | degraded | insufficient_data | no_baseline
    n_days: int
    n: int


class Estimate(View):
    model: str
    version: int
    window_start: datetime
    window_end: datetime
    metric: str  # accuracy | macro_f1
    n_predictions: int
    estimate: float | None
    estimate_unchecked: float | None
    status: str  # ok | unreliable | empty
    reason: str
    realized: float | None
    abs_error: float | None
    abs_error_unchecked: float | None
    realized_n: int | None
    realized_as_of: datetime | None


class ConfidenceDay(View):
    model: str
    version: int
    window_start: datetime  # the UTC day
    window_end: datetime
    n: int  # predictions that day
    mean: float
    min: float
    p10: float
    median: float
    p90: float
    max: float


class InterpretabilityRow(View):
    model: str
    version: int
    window_start: datetime
    window_end: datetime
    feature: str
    importance_gain: float | None
    mean_abs_shap: float | None
    shap_rank: int | None
    n_predictions: int


# --------------------------------------------------------------------------- closed loop


class Alert(View):
    alert_id: int
    model: str
    version: int | None
    kind: str  # drift | performance | data_quality | age | risk | artifact_integrity
    status: str  # open | acknowledged | resolved
    severity: str  # info | warning | critical
    score: float | None
    title: str
    message: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    first_window: datetime
    last_window: datetime
    occurrences: int
    opened_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolution: str | None


class Trigger(View):
    trigger_id: int
    model: str
    version: int | None
    trigger_type: str  # drift | degradation | age | risk | manual
    retrain_mode: str  # full | incremental
    priority: str  # low | medium | high | critical
    rule_name: str | None
    reason: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    status: str  # pending | claimed | done | failed | cancelled
    window_start: datetime | None
    window_end: datetime | None
    triggered_at: datetime
    created_by: str | None
    claimed_at: datetime | None
    claimed_by: str | None
    completed_at: datetime | None
    outcome: str | None
    result: dict[str, Any] = Field(default_factory=dict)


class GateResult(View):
    id: int
    gate: str
    status: str  # pass | borderline | fail
    value: float | None
    threshold: float | None
    message: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    candidate_version: int | None
    champion_version: int | None
    evaluated_at: datetime


class TrainingJob(View):
    job_id: int
    trigger_id: int
    dataset_id: int | None
    model: str
    algorithm: str
    retrain_mode: str
    status: str  # running | succeeded | failed
    params: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    candidate_version: int | None
    error: str | None
    started_by_run: str | None
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None
    gates: list[GateResult] = Field(default_factory=list)  # the job's quality gates, in evaluation order


# --------------------------------------------------------------------------- A/B tests


class ABTestRow(View):
    test_id: int
    model: str
    champion_version: int
    challenger_version: int
    split: float
    allocation: str
    min_samples: int
    max_days: int
    alpha: float
    status: str
    reason: str
    started_at: datetime
    ended_at: datetime | None
    started_by: str


class ABArm(View):
    """An arm's metrics on the rows it served (``live_metrics`` names)."""

    rows: int | None
    accuracy: float | None
    n_trades: int | None
    hit_rate: float | None
    win_rate: float | None
    profit_factor: float | None
    avg_rr: float | None
    sharpe: float | None


class ABDay(View):
    """One evaluation day of a test (``ab_daily_results``): cumulative since the start."""

    day: date
    days_elapsed: int  # sessions assigned so far: the test's age
    matured_rows: int  # rows both arms scored whose outcome matured
    paired: dict[str, int]  # both_right, champion_only (b), challenger_only (c), both_wrong
    arms: dict[str, ABArm]
    # the assigned arms: matured units and their hits (a hit: the predicted label was the realized one)
    n_champion: int
    hits_champion: int
    n_challenger: int
    hits_challenger: int
    z: float | None
    z_p_value: float | None
    mcnemar_p_value: float | None
    seq_log_lr: float | None
    seq_log_threshold: float | None
    seq_decision: str
    # both one-sided statistics and the units they ran on (``row``: discordant rows, ``session``: sessions won);
    # None on days evaluated before migration 018, and for a side that underflowed (far below the threshold)
    seq_unit: str | None = None
    seq_champion_wins: int | None = None
    seq_challenger_wins: int | None = None
    seq_log_lr_challenger: float | None = None
    seq_log_lr_champion: float | None = None
    srm_p_value: float | None
    srm_mismatch: bool
    decision: str
    reason: str
    next_split: float  # the challenger's share from the next session on (thompson: updated each day)
    run_id: str | None


class ABTestSummary(ABTestRow):
    """A test with its latest evaluation day (None before the first), for the A/B testing page."""

    latest_day: date | None
    days_elapsed: int | None
    matured_rows: int | None
    latest_decision: str | None


class ABCompare(View):
    test: ABTestRow
    latest: ABDay | None


class ABTrafficDay(View):
    day: date
    champion: int
    challenger: int
    split: float  # the configured challenger share the session's units were assigned with (their mean)


class ABTraffic(View):
    test_id: int
    configured_split: float
    observed_split: float | None
    champion_units: int
    challenger_units: int
    days: list[ABTrafficDay]


# --------------------------------------------------------------------------- active learning


class LabelItem(View):
    """An item of the active-learning queue (``active_learning_queue``): a prediction the model could hardly
    decide (confidence ``p1 / (p1 + p2)`` of its two best classes), what a person answered and the outcome."""

    item_id: int
    model: str
    version: int
    symbol: str
    ts: datetime  # the bar
    features: dict[str, Any] = Field(default_factory=dict)
    probabilities: dict[str, float]
    predicted_label: str  # the model's answer: BUY | SELL | HOLD
    confidence: float  # 0.5 .. 1
    priority: int  # 3 (narrowest band) .. 1
    status: str  # pending | labelled | skipped | processed | expired
    manual_label: str | None
    labelled_by: str | None
    labelled_at: datetime | None
    notes: str | None
    realized_label: str | None  # the outcome over the horizon, once matured
    realized_return: float | None
    training_dataset_id: int | None  # the training set that used the label (status processed)


class LabelSettings(View):
    """A model's active-learning settings (``active_learning_settings``, else the defaults)."""

    enabled: bool
    band_max: float
    priority2_max: float
    priority3_max: float
    label_weight: float
    on_disagreement: str  # human | outcome | drop
    expire_after_days: int
    batch_size: int


class QueueCounts(View):
    """A model's queue: items per status, the oldest pending bar and the latest answer."""

    model: str
    pending: int
    labelled: int
    skipped: int
    processed: int
    expired: int
    oldest_pending: datetime | None
    last_answer: datetime | None
    settings: LabelSettings


class LabellerAgreement(View):
    """How often a labeller's labels matched the realized outcome, and the model's answers on the same items
    (labelled items whose outcome matured). ``labelled_by`` None: every labeller together."""

    labelled_by: str | None
    items: int
    human_agreement: float
    model_agreement: float
    below_model: bool  # the labeller matched the outcome less often than the model did on those items


class LabelStats(View):
    models: list[QueueCounts]
    agreement: list[LabellerAgreement]  # per labeller (by name), then the overall row


class IngestBatch(View):
    """One batch file ``ingest_predictions`` loaded or quarantined (table ``ingest_batches``)."""

    batch_id: int
    source: str  # folder | table
    kind: str  # predictions | outcomes
    name: str
    model: str | None
    version: int | None
    status: str  # loaded | quarantined
    n_rows: int
    n_written: int
    interval_start: datetime | None
    interval_end: datetime | None
    error: str | None  # why it was quarantined: file, column, rows
    ingested_at: datetime
    run_id: str | None


class MaintenanceRun(View):
    """What ``maintenance_daily`` did to one table for one data interval (table ``maintenance_runs``)."""

    interval_end: datetime
    table: str
    action: str  # rollup | delete | strip_features | partitions
    policy_variable: str | None  # the retention Variable applied (None for partitions)
    retention_days: int | None
    cutoff: datetime | None  # rows older than this were in scope
    rows_affected: int  # rows removed, rolled up or stripped
    rows_written: int  # roll-up rows written
    partitions: list[str]  # partitions created
    runs: int  # attempts of the interval that committed
    duration_s: float
    run_id: str | None


class ExternalRegistered(View):
    """An external model version registered from its spec and reference frame."""

    model: str
    version: int
    alias: str
    previous_version: int | None
    classes: list[str]
    features: list[str]
    reference_rows: int
    reference_period: list[str]
    feature_schema: list[dict[str, Any]]
    by: str
