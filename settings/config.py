"""Process configuration, read once from `TASKPLANE_*` environment variables.

Connection URLs are optional here because `taskplane up` fills in the ones that
are unset with the embedded servers it starts; the API and the worker ask for
them through the `require_*` methods, which fail loudly instead of letting a
`None` travel into a driver.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from settings.admission import AdmissionSettings
from settings.rate_limits import RateLimitSettings
from settings.redis_cluster import RedisClusterSettings


class ConfigurationError(RuntimeError):
    """A setting a process needs is missing or unusable."""


class Settings(RedisClusterSettings, AdmissionSettings):  # sections: settings/*.py
    model_config = SettingsConfigDict(env_prefix="TASKPLANE_", extra="ignore")

    database_url: str | None = None
    redis_url: str | None = None
    temporal_address: str | None = None
    temporal_namespace: str = "default"
    # How long an API request waits on one Temporal call (start, describe, query, signal)
    # before answering 503 + Retry-After: a Temporal that hangs is not a hung request.
    temporal_rpc_timeout_seconds: float = Field(default=10.0, gt=0)
    task_queue: str = "taskplane"

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    temporal_port: int = Field(default=7233, ge=0, le=65535)
    temporal_ui_port: int = Field(default=8233, ge=0, le=65535)

    # Where the local stack keeps its servers' data; git-ignored.
    state_dir: Path = Path(".taskplane")

    # Event path tuning.
    publish_timeout_seconds: float = Field(default=1.0, gt=0)
    # Group commit (activities/group_commit.py): recordings one worker process queues while
    # `record_commits_in_flight` commits are in flight go as one transaction and one
    # publish, at most `record_group_max` of them; a group max of 1: never.
    record_group_max: int = Field(default=32, ge=1)
    record_commits_in_flight: int = Field(default=2, ge=1)
    outbox_grace_seconds: float = Field(default=2.0, ge=0)
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    outbox_batch_size: int = Field(default=100, ge=1)
    broker_stream_maxlen: int = Field(default=100_000, ge=1)
    # Budgets (docs/operations.md#event-budgets). A task records at most this many events
    # (its terminal event and step failures excepted); past it, it fails. `POST /tasks`
    # refuses (422) a built-in task whose input alone would need more.
    max_events_per_task: int = Field(default=100_000, ge=10)
    # Progress events per second per task (per worker) steps may record after a burst of
    # `progress_burst`; faster ones are coalesced, the latest value winning, each step's
    # first and last always recorded (activities/coalesce.py). 0: no coalescing.
    progress_max_rate: float = Field(default=10.0, ge=0)
    progress_burst: int = Field(default=20, ge=1)

    # SSE tuning.
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0)
    sse_client_queue_size: int = Field(default=256, ge=1)
    sse_history_page_size: int = Field(default=500, ge=1, le=1000)
    # Stream hygiene: a stream with no event for this long ends (the client resumes
    # with Last-Event-ID); past the cap new streams get 503; a client that takes no
    # bytes for the send timeout is dropped; `retry:` tells EventSource when to reconnect.
    sse_idle_timeout_seconds: float = Field(default=300.0, gt=0)
    # While Redis is away, streams read the store this often instead (one query per
    # stream per interval: the price of staying live through an outage).
    sse_store_poll_seconds: float = Field(default=1.0, gt=0)
    sse_max_streams: int = Field(default=5000, ge=1)
    sse_send_timeout_seconds: float = Field(default=30.0, gt=0)
    sse_retry_ms: int = Field(default=2000, ge=0)

    # Redis: the CLIENT SETNAME prefix of this process's connections (`-publish`, `-pubsub`, …).
    redis_client_name: str = "taskplane"

    # Durable event handlers in the worker: `module:attribute` paths to
    # `worker.event_handler.EventHandler` objects, comma-separated (none by default).
    event_handlers: str = ""
    handler_claim_idle_seconds: float = Field(default=30.0, gt=0)
    handler_max_deliveries: int = Field(default=5, ge=1)
    # How long one read of the durable stream waits for entries: also how long a
    # stopping worker's handlers may take to notice the stop.
    handler_block_seconds: float = Field(default=1.0, gt=0, le=30)
    # A handler healing a trim gap reads the events published since the gap began, less
    # this much: the skew between the Redis and Postgres clocks, and a relay batch's time.
    handler_heal_margin_seconds: float = Field(default=120.0, ge=0)

    # Worker: how long SIGTERM waits for running activities; 0 cached workflows
    # makes every workflow task replay from history (a determinism check).
    worker_shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    worker_max_cached_workflows: int = Field(default=1000, ge=0)
    # Workflow tasks one worker holds at once; unset: the SDK's 100. Fewer keep a backlog
    # in Temporal's matching, where the tenant fairness key orders it
    # (docs/flow-control.md#fairness).
    worker_task_slots: int | None = Field(default=None, ge=1)
    # Activities (and, apart, local activities) one worker runs at once, whatever the task
    # slots: 100, the SDK's default. A task's step is an activity that mostly waits; with
    # as few activity slots as a concurrency limit, the limited tenant's running steps
    # would hold every one of them and another tenant's first step wait for a free slot.
    worker_activity_slots: int = Field(default=100, ge=1)
    # Workflow-task polls one worker keeps open, and the share of them on the task queue
    # (a new run's first workflow task) rather than on its sticky queue; the SDK's 5 and
    # 0.2 left one poll for every new task (worker/temporal_worker.py workflow_polling).
    worker_workflow_polls: int = Field(default=10, ge=2)
    worker_new_run_poll_share: float = Field(default=0.5, gt=0, le=1)
    # Run workflow code in Temporal's sandbox (true) or without it (false, the default):
    # the sandbox's per-run module table and its per-payload calls into it cost the worker
    # 7-17 ms of CPU a task (docs/performance.md, issue 15). Determinism stays guarded by
    # the replay tests, which run every stored history through the sandbox.
    workflow_sandbox: bool = False

    # Reconciler (worker): records the ending of runs that closed without recording one
    # (terminate, a workflow timeout, a failed run). Every `interval` it lists runs closed
    # since its last look (visibility, `lookback` on start); every `sweep` it checks up to
    # `batch` tasks the store thinks open and untouched for `stale` seconds (outage heal).
    reconcile_enabled: bool = True
    reconcile_interval_seconds: float = Field(default=2.0, gt=0)
    reconcile_lookback_seconds: float = Field(default=3600.0, ge=0)
    reconcile_sweep_seconds: float = Field(default=60.0, gt=0)
    reconcile_stale_seconds: float = Field(default=300.0, ge=0)
    reconcile_batch_size: int = Field(default=100, ge=1)

    # Retention (worker's pruner, `taskplane prune`; docs/operations.md#retention). Closed
    # tasks are pruned `closed_tasks` seconds after they closed (with their events, outbox
    # rows, processed marks, webhook and owner rows; open tasks never); published outbox
    # rows after `outbox_published`; a pruned task's tombstone (404, no late event) after
    # `tombstones`; the owner and webhook rows of a task whose workflow never started after
    # `orphan_grace`. Every `interval`, one worker at a time, `batch` tasks a transaction.
    retention_enabled: bool = True
    retention_closed_tasks_seconds: float = Field(default=30 * 86_400.0, ge=0)
    # A day, not an hour: a durable handler heals a trim gap from the published outbox rows
    # (store/published.py), so they must outlive the longest a handler may fall behind.
    retention_outbox_published_seconds: float = Field(default=86_400.0, ge=0)
    retention_tombstones_seconds: float = Field(default=30 * 86_400.0, ge=0)
    retention_orphan_grace_seconds: float = Field(default=3600.0, ge=0)
    # Flow control's own rows (issue 24): a debounced creation's Idempotency-Key answer
    # once its window closed (its task started) this long ago; a finished bulk operation
    # (with its per-task outcomes) this long after it finished.
    retention_debounced_requests_seconds: float = Field(default=30 * 86_400.0, ge=0)
    retention_bulk_operations_seconds: float = Field(default=30 * 86_400.0, ge=0)
    retention_interval_seconds: float = Field(default=60.0, gt=0)
    retention_batch_size: int = Field(default=100, ge=1, le=10_000)
    # Partitions of `events` (store/partitions.py; docs/operations.md#partitions): by the
    # creation time of the task, `interval` wide, made `ahead` seconds ahead by the
    # pruning round and `taskplane migrate`; their DDL waits at most `lock_timeout` for a
    # lock (the recordings it would hold up), then tries again next round.
    partition_interval_seconds: float = Field(default=86_400.0, ge=60)
    partition_ahead_seconds: float = Field(default=3 * 86_400.0, ge=0)
    partition_lock_timeout_seconds: float = Field(default=0.5, gt=0)

    # PgBouncer (docs/operations.md#pgbouncer). `database_url` may name a pooler: with
    # `database_pooler="transaction"` (PgBouncer's pool_mode=transaction) the pools make no
    # server-side prepared statements, since one prepared on a server connection is unknown
    # (or already taken) on the next. Session-bound work (LISTEN, the migration and
    # `taskplane prune` locks) goes to `database_direct_url`, which must reach Postgres
    # itself (or a session-mode pool); unset, `database_url`.
    database_pooler: Literal["none", "transaction"] = "none"
    database_direct_url: str | None = None

    db_pool_min_size: int = Field(default=1, ge=1)
    db_pool_max_size: int = Field(default=10, ge=1)
    # How long a request waits for a pooled connection (then 503 while Postgres is away).
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)

    log_level: str = "INFO"

    # The task page and the CLI (`taskplane tasks …`). The CLI reads `api_url` and
    # `api_key` (TASKPLANE_API_URL, TASKPLANE_API_KEY): which API to talk to, with which
    # key. The API serves `temporal_ui_url` to the page for its links into the Temporal
    # Web UI; unset, the page's own host on `temporal_ui_port`.
    api_url: str = "http://127.0.0.1:8000"
    api_key: SecretStr | None = None
    temporal_ui_url: str | None = None

    # Webhooks (docs/webhooks.md). URLs reaching loopback, private, link-local or other
    # non-public addresses are refused (SSRF) unless `allow_private_networks`; a failed
    # delivery is retried after base * 4^(attempt-1) seconds (capped, jittered) until
    # `max_attempts` or `max_age_seconds`; a claimed delivery is leased for `lease_seconds`.
    webhook_allow_private_networks: bool = False
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_max_attempts: int = Field(default=10, ge=1)
    webhook_max_age_seconds: float = Field(default=86_400.0, gt=0)
    webhook_retry_base_seconds: float = Field(default=5.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=21_600.0, gt=0)
    webhook_lease_seconds: float = Field(default=60.0, gt=0)
    webhook_poll_seconds: float = Field(default=1.0, gt=0)
    webhook_batch_size: int = Field(default=32, ge=1)
    webhook_disable_on_gone: bool = True

    # Observability (docs/operations.md). The worker serves our metrics on
    # `worker_metrics_port` and the Temporal SDK's own on `worker_metrics_temporal_port`
    # (both on `worker_metrics_host`; empty or negative turns one off); gauges read from
    # the store (tasks by status) refresh every `metrics_refresh_seconds`. Traces go to
    # `tracing_exporter`: "none" (default: no spans are made at all), "console" or "otlp"
    # (OTLP/HTTP to `tracing_otlp_endpoint`), sampled at `tracing_sample_ratio`.
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int | None = Field(default=9464, le=65535)
    worker_metrics_temporal_port: int | None = Field(default=9465, le=65535)
    metrics_refresh_seconds: float = Field(default=15.0, gt=0)
    tracing_exporter: Literal["none", "console", "otlp"] = "none"
    tracing_otlp_endpoint: str = "http://127.0.0.1:4318/v1/traces"
    tracing_sample_ratio: float = Field(default=1.0, ge=0, le=1)
    tracing_service_name: str = "taskplane"
    # A secured Temporal cluster or Temporal Cloud: TLS (system CAs unless `ca_path`),
    # mTLS with a client cert and key, and/or an API key (which turns TLS on by itself).
    temporal_tls: bool | None = None  # None: on when an API key or a client cert is set
    temporal_tls_cert_path: Path | None = None
    temporal_tls_key_path: Path | None = None
    temporal_tls_ca_path: Path | None = None
    temporal_tls_server_name: str | None = None
    temporal_api_key: SecretStr | None = None

    # Tenants, stream tokens and limits (docs/security.md). `api_keys`:
    # "tenant:key,tenant:sha256:<hex>,…" (empty: the API runs open as tenant `default`).
    # Stream tokens are HMAC-signed with `stream_token_secret` (unset: a random secret per
    # process, so a token works only on the process that minted it). Limits answer with
    # problem+json: 413 body, 422 page size, 429 streams per tenant / creation rate.
    api_keys: SecretStr = SecretStr("")
    # Origins whose pages may use the API cross-origin (docs/security.md, "CORS"):
    # "https://app.example.com,http://localhost:5173" or "*"; empty: none.
    cors_origins: str = ""
    stream_token_secret: SecretStr | None = None
    stream_token_ttl_seconds: float = Field(default=60.0, gt=0, le=86_400)
    # One-time input links (an approval link in an e-mail) are signed with a key derived
    # from `stream_token_secret`; this is how long one stays valid unless asked shorter.
    input_link_ttl_seconds: float = Field(default=7 * 86_400, gt=0, le=90 * 86_400)
    limit_body_bytes: int = Field(default=1_048_576, ge=1)
    limit_tasks_page_size: int = Field(default=500, ge=1, le=1000)
    limit_history_page_size: int = Field(default=1000, ge=1, le=1000)
    limit_streams_per_tenant: int = Field(default=1000, ge=1)
    limit_task_create_per_second: float = Field(default=50.0, gt=0)
    limit_task_create_burst: int = Field(default=200, ge=1)
    # Creations of one tenant past validation at once in one API process (api/creation_turns.py).
    limit_task_create_concurrency: int = Field(default=8, ge=0)
    # Start rates shared by every API process (JSON; settings/rate_limits.py).
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)

    # Outbox relay (docs/delivery.md; the grace/poll/batch knobs are under "Event path").
    # After a publish error the relay backs off up to `relay_max_backoff_seconds`; it
    # refreshes the pending-count/oldest-age metrics every `relay_backlog_seconds`;
    # `relay_listen` wakes it on other workers' NOTIFY. TEST ONLY, never in production:
    # `outbox_test_kill_after_commit` = an event type after whose commit (before its
    # publish) the worker SIGKILLs itself (tests/faults/).
    relay_max_backoff_seconds: float = Field(default=5.0, gt=0)
    relay_backlog_seconds: float = Field(default=5.0, gt=0)
    relay_listen: bool = True
    outbox_test_kill_after_commit: str = ""

    @field_validator("worker_metrics_port", "worker_metrics_temporal_port", mode="before")
    @classmethod
    def _port_or_off(cls, value: object) -> object:
        """An empty or negative port turns that metrics endpoint off."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if int(str(value)) < 0:
            return None
        return value

    def require_database_url(self) -> str:
        return _required(self.database_url, "TASKPLANE_DATABASE_URL")

    def require_database_direct_url(self) -> str:
        """Where session-bound work connects: the direct URL, else the database URL."""
        return self.database_direct_url or self.require_database_url()

    @property
    def database_prepared_statements(self) -> bool:
        """Whether pooled connections may prepare statements on the server."""
        return self.database_pooler != "transaction"

    def require_redis_url(self) -> str:
        return _required(self.redis_url, "TASKPLANE_REDIS_URL")

    def require_temporal_address(self) -> str:
        return _required(self.temporal_address, "TASKPLANE_TEMPORAL_ADDRESS")


def _required(value: str | None, name: str) -> str:
    if not value:
        raise ConfigurationError(f"{name} is not set (run `taskplane up`, or point it at a server)")
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
