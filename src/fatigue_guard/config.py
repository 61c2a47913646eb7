"""Typed configuration: every knob of the system, read once from the environment.

All names carry the ``FATIGUE_GUARD_`` prefix, except ``MLFLOW_TRACKING_URI``, which
MLflow users already set. Defaults put everything under ``FATIGUE_GUARD_HOME`` so that the demo
needs nothing running.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime configuration. Construct directly in tests; use :func:`get_settings` elsewhere."""

    model_config = SettingsConfigDict(
        env_prefix="FATIGUE_GUARD_", extra="ignore", populate_by_name=True
    )

    home: Path = Field(
        default=Path(".fatigue-guard"),
        description="Folder for local state: SQLite file, blob folder, spool, model cache, MLflow.",
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; unset = SQLite file under HOME."
    )
    azure_storage_connection_string: SecretStr | None = Field(
        default=None, description="Azure Blob connection string; unset = local folder under HOME."
    )
    blob_container: str = Field(
        default="fatigue-guard", description="Azure Blob container of the feature store."
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "FATIGUE_GUARD_MLFLOW_TRACKING_URI"),
        description="MLflow tracking + registry URI; unset = SQLite store under HOME.",
    )
    mlflow_experiment: str = Field(
        default="fatigue-guard", description="MLflow experiment that training runs log to."
    )
    registered_model_name: str = Field(
        default="fatigue-rf", description="Registered model whose aliases the API follows."
    )
    precision_floor: float = Field(
        default=0.75,
        gt=0.0,
        lt=1.0,
        description="Least precision an alerting model may have: recall is maximised under it.",
    )
    admin_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of the admin routes and the dashboard; unset = they are off.",
    )

    # Training: data quality gate, honest splits, threshold margin, search budget.
    max_invalid_share: float = Field(
        default=0.05, ge=0.0, le=1.0, description="Fail training above this share of bad rows."
    )
    holdout_fraction: float = Field(
        default=0.2, gt=0.0, lt=1.0, description="Most recent share of the timeline held out."
    )
    cv_folds: int = Field(default=3, ge=2, description="GroupKFold-by-user folds for OOF scores.")
    n_estimators: int = Field(default=100, ge=1, description="Trees per forest.")
    search_budget_s: float = Field(
        default=60.0, ge=0.0, description="Seconds of hyperparameter search per training run."
    )
    search_max_rows: int = Field(
        default=50_000,
        ge=100,
        description="Compare search candidates on at most this many rows (whole users); the "
        "winner is then scored out-of-fold on every row for the threshold.",
    )
    threshold_confidence_z: float = Field(
        default=1.645,
        ge=0.0,
        description="One-sided z of the Wilson lower bound the threshold's precision must clear.",
    )
    # Validation gate (staging -> production), judged on a shared recent labelled hold-out.
    gate_recall_tolerance: float = Field(
        default=0.02,
        ge=0.0,
        lt=1.0,
        description="Recall a candidate may lose against production on the shared hold-out.",
    )
    gate_precision_tolerance: float = Field(
        default=0.02,
        ge=0.0,
        lt=1.0,
        description="How far under the floor a candidate's hold-out precision may fall (noise).",
    )
    gate_min_positives: int = Field(
        default=20, ge=1, description="Fewest fatigue events in the shared hold-out to judge on."
    )

    # Feature store flushing: a Parquet batch is written when either limit is hit.
    blob_flush_max_records: int = Field(
        default=500, ge=1, description="Records per Parquet batch at most."
    )
    blob_flush_max_age_s: float = Field(
        default=5.0, gt=0, description="Oldest waiting record's age that ships a partial batch."
    )
    outbox_retention_s: float = Field(
        default=86_400.0,
        ge=0,
        description="Keep outbox rows this long after their features reached the blob store.",
    )
    outbox_purge_interval_s: float = Field(
        default=600.0, gt=0, description="How often shipped outbox rows past retention are purged."
    )

    # Data plane (storage): SQL, outbox flusher and spool tuning.
    db_connect_timeout_s: float = Field(
        default=3.0, gt=0, description="Give up connecting to the SQL DB after this; then spool."
    )
    sqlite_synchronous: str = Field(
        default="FULL",
        pattern="^(OFF|NORMAL|FULL|EXTRA)$",
        description="SQLite PRAGMA synchronous; FULL survives power loss, NORMAL is faster.",
    )
    outbox_poll_interval_s: float = Field(
        default=0.5, gt=0, description="How often the outbox flusher looks for a due batch."
    )
    outbox_retry_base_s: float = Field(
        default=0.5, gt=0, description="First back-off after a failed blob write (then doubled)."
    )
    outbox_retry_max_s: float = Field(
        default=30.0, gt=0, description="Longest back-off between blob write attempts."
    )
    outbox_lease_s: float = Field(
        default=120.0,
        gt=0,
        description=(
            "How long a claimed feature batch is reserved for the flusher that claimed it; if "
            "that process dies, any flusher retries the batch once this has passed. Keep it "
            "above the longest blob write."
        ),
    )
    spool_replay_interval_s: float = Field(
        default=2.0, gt=0, description="How often spooled records are retried into SQL."
    )

    # Serving
    model_poll_interval_s: float = Field(
        default=30.0, gt=0, description="How often each API process asks which version serves."
    )
    latency_budget_ms: float = Field(
        default=200.0,
        gt=0,
        description="Single-row p95 a version must meet in its pre-serving check, ms.",
    )
    shutdown_grace_s: float = Field(
        default=20.0,
        gt=0,
        description=(
            "How long an API process takes at most to stop after SIGTERM: /readyz answers 503 "
            "while it keeps serving (a quarter of this, at most 5 s), then it stops accepting, "
            "finishes the requests in flight (up to a quarter) and lets its recorder commit and "
            "ship what it holds in the rest. Keep it below the orchestrator's kill deadline "
            "(Kubernetes: terminationGracePeriodSeconds)."
        ),
    )
    recorder_process: bool = Field(
        default=True,
        description=(
            "Run an API process's prediction recorder (group commit, spool, outbox flusher) in "
            "a child process, so that its SQL work never waits for the API's GIL. Off: the same "
            "recorder runs as threads of the API process."
        ),
    )
    max_body_bytes: int = Field(
        default=2 * 1024 * 1024, ge=1024, description="Largest request body; larger is a 413."
    )
    record_predictions: bool = Field(
        default=True,
        description=(
            "BENCHMARK KNOB ONLY (benchmarks/serving.py): false answers predictions without "
            "recording them, to measure what durable logging costs. Never disable in production: "
            "unrecorded predictions get no feedback, monitoring or idempotent re-sends."
        ),
    )

    # Personal baselines the API computes: each recent person's history is cached in the process.
    server_baselines: bool = Field(
        default=True,
        description="Fill the personal-baseline features a request leaves out from the person's "
        "recorded history (kept in SQL). False: requests are scored as sent and no per-person "
        "history is kept, for apps that compute every baseline themselves.",
    )
    baseline_cache_ttl_s: float = Field(
        default=60.0,
        ge=0,
        description="How long a person's cached day history is used before it is read again "
        "(another replica's writes reach this one within it).",
    )
    baseline_cache_people: int = Field(
        default=20_000, ge=1, description="People whose day history one API process caches."
    )

    # Device keys: verified keys are cached this long (revocation takes effect within it).
    key_cache_ttl_s: float = Field(
        default=30.0, ge=0, description="How long a verified device key is trusted unchecked."
    )
    # Per-key token bucket: sustained requests per second and burst size.
    rate_limit_per_s: float = Field(
        default=20.0, gt=0, description="Sustained requests (or synced events) per key and process."
    )
    rate_limit_burst: int = Field(
        default=200, ge=1, description="Burst a key may spend above the sustained rate."
    )

    # What the API shows without credentials.
    metrics_public: bool = Field(
        default=True,
        description="GET /metrics without credentials (a Prometheus scrape needs no token). "
        "The metrics are per-process counts whose labels come from closed sets (route "
        "templates, status codes, model versions, contract field names): no user id, no "
        "feature value. false: /metrics needs the admin token (Prometheus: "
        "authorization.credentials_file), and answers 404 when none is configured.",
    )
    docs_enabled: bool = Field(
        default=True,
        description="Serve the interactive API pages /docs and /redoc (they load their "
        "scripts from a public CDN). /openapi.json is served either way: clients and the "
        "API fuzzer read it, and it holds nothing the API's own error messages do not tell.",
    )

    # Monitoring: windows, sample sizes, effect sizes and false-alarm control.
    # Effect sizes decide (a large window makes every p-value tiny); p-values, corrected with
    # Benjamini-Hochberg across all tests of a run, only stop small windows from flagging noise.
    monitor_window_h: float = Field(default=168.0, gt=0, description="Live window: 7 days.")
    monitor_min_samples: int = Field(
        default=1000, ge=1, description="Rows a window needs before any drift is judged."
    )
    monitor_min_segment_samples: int = Field(
        default=300, ge=1, description="Rows a segment needs before it can be named."
    )
    monitor_psi_threshold: float = Field(
        default=0.05, gt=0, description="PSI (10 reference-quantile bins) that counts as drift."
    )
    monitor_wasserstein_threshold: float = Field(
        default=0.1, gt=0, description="Wasserstein distance / reference std that is drift."
    )
    monitor_missing_tolerance: float = Field(
        default=0.05, gt=0, lt=1, description="Absolute change in a feature's missing share."
    )
    monitor_fdr: float = Field(
        default=0.01, gt=0, lt=1, description="Benjamini-Hochberg false discovery rate."
    )
    monitor_segment_min_lift: float = Field(
        default=1.5,
        gt=1,
        description="A segment is named when its shift is this many times the population's.",
    )
    monitor_segment_shift_sd: float = Field(
        default=0.3,
        gt=0,
        description="Mean shift (segment reference sd) that flags a feature within one segment.",
    )
    monitor_tolerance_hrv_ms: float = Field(default=2.0, ge=0, description="Mean RMSSD, ms.")
    monitor_tolerance_sleep_efficiency: float = Field(
        default=0.015, ge=0, description="Mean sleep efficiency shift that matters (fraction)."
    )
    monitor_tolerance_resting_hr_bpm: float = Field(
        default=1.0, ge=0, description="Mean resting heart-rate shift that matters, bpm."
    )
    monitor_tolerance_sleep_duration_h: float = Field(
        default=0.15, ge=0, description="Mean sleep duration shift that matters, hours."
    )
    monitor_min_persons: int = Field(
        default=20,
        ge=2,
        description="People with values of a feature a window needs before its person-level "
        "signals (per-person means, share outside the reference's range) are judged.",
    )
    monitor_min_segment_persons: int = Field(
        default=8,
        ge=2,
        description="People a segment value needs in the window and in the reference before "
        "its person-level tests run.",
    )
    monitor_person_share_excess: float = Field(
        default=0.1,
        gt=0,
        lt=1,
        description="Rise in the share of people outside the reference's per-person range (the "
        "central 80 % of weekly means, each tail) that counts as drift.",
    )
    monitor_person_tolerances: dict[str, float] = Field(
        default_factory=dict,
        description="Per-feature overrides (JSON object: feature -> change in a person's weekly "
        "mean, in the feature's unit) of the clinical tolerances that person-level and segment "
        "shifts must reach; unset features keep the defaults of "
        "fatigue_guard.monitoring.persons.PERSON_TOLERANCES.",
    )
    monitor_alert_rate_tolerance: float = Field(
        default=0.25, gt=0, description="Relative change in the alert rate that is drift."
    )
    monitor_min_labels: int = Field(
        default=100, ge=1, description="Labelled rows before performance signals can fire."
    )
    monitor_calibration_tolerance: float = Field(
        default=0.05,
        gt=0,
        description="Absolute gap between labelled and label-free precision that is drift.",
    )
    monitor_event_rate_tolerance: float = Field(
        default=0.25,
        gt=0,
        description="Relative gap between the labelled event rate and the calibrated expectation.",
    )
    monitor_confidence_z: float = Field(
        default=1.96, gt=0, description="z of the two-sided intervals in the report (95 %)."
    )
    monitor_cooldown_h: float = Field(
        default=24.0, ge=0, description="No second retrain trigger within this after one."
    )
    monitor_enabled: bool = Field(default=True, description="In-process scheduler on/off.")
    monitor_interval_s: float = Field(
        default=6 * 3600.0, gt=0, description="Period of the monitor scheduled inside serve."
    )

    # Retraining job: data, one-at-a-time lease, cool-down.
    baseline_data: Path | None = Field(
        default=None,
        description="Reference table retraining adds live data to; unset = the production "
        "version's training file (from its MLflow lineage) when it is a local file.",
    )
    retrain_live_window_days: float = Field(
        default=28.0, gt=0, description="Days of labelled live records a retrain adds."
    )
    retrain_advisory: bool = Field(
        default=False,
        description="A retrained version whose threshold cannot meet the precision floor is "
        "registered as advisory (probabilities only, alerts off), as `train --advisory` does; "
        "the gate never lets it replace a production version that alerts. Off: such a run "
        "registers nothing.",
    )
    retrain_lock_ttl_s: float = Field(
        default=3600.0,
        gt=0,
        description="Lease of the one running retrain; a crashed holder's lease lapses after it.",
    )
    retrain_trigger: Literal["in_process", "cli", "azureml"] = Field(
        default="in_process",
        description="What a monitoring breach starts. in_process: the retraining job, in the "
        "monitor's process. cli: nothing; the breach is reported (exit code 3) and a scheduled "
        "`fatigue-guard retrain` (cron, CronJob) retrains. azureml: the retrain command job is "
        "submitted to the Azure ML workspace below.",
    )

    # Azure ML (`fatigue-guard azureml render|submit`, and retrain_trigger=azureml).
    azureml_subscription_id: str | None = Field(
        default=None, description="Azure subscription id of the Azure ML workspace."
    )
    azureml_resource_group: str | None = Field(
        default=None, description="Resource group of the Azure ML workspace."
    )
    azureml_workspace: str | None = Field(default=None, description="Azure ML workspace name.")
    azureml_compute: str = Field(
        default="cpu-cluster",
        description="Azure ML compute cluster the monitor and retrain command jobs run on.",
    )
    azureml_image: str | None = Field(
        default=None,
        description="Container image of fatigue-guard (e.g. myacr.azurecr.io/fatigue-guard:0.1.0) "
        "for the Azure ML environment; unset = Azure ML builds the repository's Dockerfile.",
    )
    azureml_environment_version: str = Field(
        default="1",
        description="Version of the registered Azure ML environment `fatigue-guard` (versions "
        "are immutable: raise it for a new image).",
    )
    azureml_endpoint: str = Field(
        default="fatigue-guard",
        description="Managed online endpoint name (unique within the Azure region).",
    )
    azureml_instance_type: str = Field(
        default="Standard_DS3_v2", description="VM size of each online deployment instance."
    )
    azureml_instance_count: int = Field(
        default=2, ge=1, description="Instances per online deployment (blue, green)."
    )
    azureml_storage_account: str | None = Field(
        default=None,
        description="Storage account holding BLOB_CONTAINER; registered as the Azure ML "
        "datastore `fatigue_guard_blobs` (identity-based access, no key in the workspace).",
    )
    azureml_key_vault: str | None = Field(
        default=None,
        description="Key Vault (name) holding the secrets the deployments and jobs read: "
        "fatigue-guard-database-url, fatigue-guard-storage-connection-string, "
        "fatigue-guard-admin-token.",
    )
    azureml_secret_versions: dict[str, str] = Field(
        default_factory=dict,
        description="Key Vault secret name -> version the online deployments pin (JSON in the "
        "environment variable); Azure ML's Key Vault references name a secret version.",
    )
    azureml_templates: Path | None = Field(
        default=None,
        description="Folder of the Azure ML YAML templates; unset = deploy/azureml of the "
        "source checkout (the container image sets it to its copy).",
    )

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home_dir / 'fatigue-guard.db'}"

    @property
    def effective_mlflow_tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{self.home_dir / 'mlflow.db'}"

    @property
    def mlflow_artifact_root(self) -> Path:
        """Where runs' artifacts go when the tracking store is the embedded SQLite one."""
        return self.home_dir / "mlartifacts"

    @property
    def local_blob_root(self) -> Path:
        return self.home_dir / "blobs"

    @property
    def spool_dir(self) -> Path:
        """Append-only files that hold records while the SQL DB is unreachable."""
        return self.home_dir / "spool"

    @property
    def model_cache_dir(self) -> Path:
        return self.home_dir / "model-cache"

    def ensure_home(self) -> Path:
        self.home_dir.mkdir(parents=True, exist_ok=True)
        return self.home_dir


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()
