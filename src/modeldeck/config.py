"""Settings: the one place where modeldeck reads its environment.

Every field is documented by the docstring under it; ``docs/configuration.md`` is generated from
these docstrings (``modeldeck settings --markdown``) and a test fails when a field is undocumented.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """modeldeck's settings, read from ``MODELDECK_*`` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="MODELDECK_", extra="ignore", use_attribute_docstrings=True
    )

    data_dir: Path = Path(".modeldeck")
    """Directory holding the SQLite store, replica logs and, unless ``MLFLOW_TRACKING_URI`` is
    set, the MLflow tracking database and artifacts."""

    store_url: str | None = None
    """SQLAlchemy URL of the store. Default: ``sqlite:///<data_dir>/modeldeck.db`` (WAL mode).
    For production use PostgreSQL: ``postgresql+psycopg://user:password@host:5432/db``."""

    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "MODELDECK_MLFLOW_TRACKING_URI"),
    )
    """MLflow tracking and registry URI (read from ``MLFLOW_TRACKING_URI``). Default: an MLflow
    SQLite store at ``<data_dir>/mlflow.db`` with artifacts under ``<data_dir>/mlartifacts``."""

    host: str = "127.0.0.1"
    """Address the platform listens on."""

    port: int = 8000
    """Port of the platform: control plane API, model endpoints and dashboard."""

    public_url: str | None = None
    """URL under which users reach the platform, used in printed endpoint URLs. Default:
    ``http://<host>:<port>``."""

    api_key: SecretStr | None = None
    """Control-plane API key accepted in addition to the keys in the store. When unset and the
    store holds no key, one is created on first start and printed once."""

    auth_enabled: bool = True
    """Require an API key on the control-plane API (``/api/v1``). Turn off only on a trusted
    machine; model endpoints keep their own per-deployment access keys."""

    secret_key: SecretStr | None = None
    """The platform's secret (at least 32 characters), which encrypts the copy of each access
    key that API keys of scope ``deploy`` or ``admin`` can read back. Default: a random one made
    on first start in ``<data_dir>/secret.key`` (mode 0600). Platforms sharing one PostgreSQL
    store need the same secret; keys encrypted under another secret read back as null until
    rotated."""

    allowed_file_dirs: Annotated[list[Path], NoDecode] = Field(default=[])
    """Directories ``--file`` deployments may load their Python file from, separated by
    ``os.pathsep`` (``:`` on Linux and macOS). A file outside them (after following symbolic
    links and ``..``) is refused with a 422. Default: ``<data_dir>/files`` and the directory
    the platform was started in."""

    max_request_bytes: int = 5 * 1024 * 1024
    """Largest accepted request body on model endpoints, in bytes (5 MB, as Cloudera ML)."""

    max_response_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    """Largest prediction a model endpoint answers, in bytes of JSON (16 MB). A model whose
    output is larger gets its caller a 500 ``model_error`` and nothing is recorded."""

    max_api_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Largest accepted JSON body on the control plane (``/api/``), in bytes (64 MB: a batch of
    5,000 delayed metrics, the client's chunk, is about 0.5 MB). A larger one is refused with a
    413 before it is read into memory."""

    header_timeout_seconds: float = Field(default=10.0, ge=0)
    """Time a client has, from opening a connection (or starting a request on a kept-alive
    one), to send the request line and headers; then it gets a 408 and the connection closes
    (0: no limit). Applies to every socket modeldeck listens on."""

    body_timeout_seconds: float = Field(default=30.0, ge=0)
    """Longest pause in the arrival of a request's body (an idle timeout: an upload that keeps
    moving is never cut off); then the connection closes (0: no limit)."""

    request_timeout_seconds: float = 30.0
    """Time a model endpoint may take to answer before the caller gets a 504 (30 s, as Cloudera
    ML). The replica that did not answer is recycled (killed and restarted): a predict call
    cannot be interrupted, and one that hangs would hold its replica for ever."""

    replica_max_concurrency: int = Field(default=64, ge=1)
    """Requests the gateway sends to one replica at a time. When every ready replica of a
    deployment has this many in flight, a request waits for a free one for at most
    ``queue_timeout_seconds``, then gets a 429 with ``Retry-After``."""

    queue_timeout_seconds: float = Field(default=2.0, ge=0)
    """Longest time a request waits at the gateway for a replica with a free slot (see
    ``replica_max_concurrency``) before it gets a 429; the wait does not count towards
    ``request_timeout_seconds``."""

    replica_memory_limit_mb: int | None = Field(default=None, gt=0)
    """Resident memory (RSS) above which the supervisor recycles a replica, in MB, for
    deployments without a ``memory_mb`` of their own (which takes precedence). Checked at every
    health check. Default: no limit."""

    replica_start_timeout_seconds: float = 180.0
    """Time a replica may take to load its model and answer its health check."""

    replica_max_start_failures: int = 3
    """A deployment is marked failed when a replica exits this many times before ever becoming
    healthy."""

    keep_replicas_on_exit: bool = True
    """When `modeldeck server` exits (stopped, upgraded or crashed), its local replicas keep
    running and the next start adopts them (no model reload, no outage of the replicas); off,
    they stop with it. `modeldeck server --stop-all` stops the platform and every replica."""

    health_interval_seconds: float = 0.5
    """Interval between the supervisor's health checks of each replica."""

    restart_backoff_max_seconds: float = 30.0
    """Upper bound of the exponential back-off between restarts of a crashing replica."""

    max_batch_rows: int = 1024
    """Replicas combine concurrent requests into one predict call of at most this many rows."""

    prediction_retention_days: float = 30.0
    """Raw prediction records (and their delayed metrics) and replica events (scaling) older
    than this are pruned in the background, hourly. Aggregate metrics are kept."""

    technical_monitoring: bool = True
    """Count model-endpoint requests for technical monitoring and Prometheus. Turn off only to
    measure what the counting costs (``benchmarks/serve.py`` does)."""

    technical_retention_days: float = 14.0
    """Technical metrics (request rollups, replica CPU and memory samples) older than this are
    pruned hourly (two weeks, as Cloudera ML keeps)."""

    max_upload_bytes: int = 256 * 1024 * 1024
    """Largest reference-data upload (``modeldeck reference set``), in bytes."""

    alert_interval_seconds: float = 60.0
    """How often the platform evaluates alert rules."""

    summary_interval_seconds: float = Field(default=60.0, ge=0)
    """How often the platform brings the five-minute and hourly drift and performance summaries
    of each deployment's last 24 hours up to date, and ``summary_backfill_hours`` older hours
    of them, so reports find them ready (0: only when a report asks)."""

    quality_gauges_interval_seconds: float = Field(default=60.0, ge=0)
    """How often the platform recomputes the drift, performance and label-lag gauges that
    ``/metrics`` serves (0: never; the gauges are then absent). A scrape reads the last
    computed values, so they are at most this old plus one computation. Each refresh runs the
    drift and performance reports over the window, which store the summaries they miss."""

    quality_gauges_window_seconds: int = Field(default=3600, ge=300, le=7 * 86_400)
    """The trailing window those gauges are computed over (five minutes to seven days; the
    reports behind them read the platform's five-minute and hourly summaries)."""

    summary_backfill_hours: int = Field(default=24, ge=0, le=24 * 366)
    """Older hours of summaries each deployment gets brought up to date per round of
    ``summary_interval_seconds``, beyond the last 24 hours: each round takes the stretch below
    the previous one, down to ``prediction_retention_days``, then starts again from the top (so
    late labels for an old hour are taken in). With the defaults a week of history is current
    after seven rounds (about seven minutes plus the builds' time) and 30 days after thirty, and
    a report over any window up to the retention builds nothing while the user waits. 0: only
    the last 24 hours."""

    alias_poll_seconds: float = Field(default=30.0, ge=0)
    """How often the platform checks the registry alias of each running deployment that follows
    one (``models:/name@alias``); when the alias points at another version, that version rolls
    out the way a redeploy does (0: deployments do not follow their alias)."""

    canary_interval_seconds: float = Field(default=30.0, gt=0)
    """How often the policy of each running canary is evaluated: the candidate is promoted when
    every check passes, rolled back when one fails, and waited for while it has fewer than the
    policy's ``min_requests`` requests (see docs/deployments.md, "Canary and shadow")."""

    autoscale_interval_seconds: float = Field(default=1.0, gt=0)
    """How often the autoscaler samples the requests in flight of each local deployment with an
    autoscaling policy and scales it when the policy says so (see docs/deployments.md,
    "Autoscaling")."""

    replica_preload: Annotated[list[str], NoDecode] = Field(
        default=[
            "modeldeck.replica.app", "mlflow.pyfunc", "mlflow.sklearn", "skops.io",
            "sklearn.linear_model", "sklearn.ensemble", "pandas", "modeldeck.replica.preload",
        ]
    )  # fmt: skip
    """Modules a fork server imports once, comma-separated; replicas that run in the platform's
    own Python with no environment variables of their own are forked from it, so a replica
    starts (or restarts after a crash) in about a second instead of importing them anew.
    Modules that are not installed are skipped. Empty: every replica is a new interpreter."""

    webhook_attempts: int = 5
    """Delivery attempts of each of an alert's channels (webhook, Slack, Teams, PagerDuty,
    e-mail) before it is recorded as failed (exponential back-off between them)."""

    smtp_host: str | None = None
    """SMTP server that sends alert e-mails (alert rules' ``email`` channels). Unset: a rule with
    an ``email`` channel is refused (422)."""

    smtp_port: int = Field(default=587, ge=1, le=65535)
    """Port of the SMTP server: 587 for STARTTLS (submission), 465 with ``smtp_ssl``, 25 plain."""

    smtp_starttls: bool = True
    """Upgrade the connection with STARTTLS before authenticating and sending; a server that
    does not offer it fails the delivery rather than send in the clear."""

    smtp_ssl: bool = False
    """Connect over TLS from the start (SMTPS, usually port 465) instead of STARTTLS."""

    smtp_username: str | None = None
    """User name for SMTP authentication (AUTH); unset: no authentication."""

    smtp_password: SecretStr | None = None
    """Password for SMTP authentication; never logged."""

    smtp_from: str = "modeldeck@localhost"
    """The ``From`` address of alert e-mails."""

    smtp_ca_file: Path | None = None
    """CA certificates (PEM) that the SMTP server's certificate is verified against. Default: the
    system's trusted CAs."""

    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    """Time a connection to the SMTP server, and each command on it, may take."""

    build_cache_dir: Path | None = None
    """Where builds keep isolated model environments and downloaded models (deployments with
    ``env_manager`` ``uv`` or ``virtualenv``). Default: ``<data_dir>/builds``."""

    build_cache_max_bytes: int = Field(default=20 * 1024**3, ge=0)
    """Size limit of the cached environments (20 GiB). After a build, the least recently used
    environments that no running deployment uses are removed until the cache fits."""

    build_timeout_seconds: float = Field(default=900.0, gt=0)
    """Time a build may take to create and install an environment before it fails."""

    default_runtime: Literal["local", "ray"] = "local"
    """Runtime of a deployment created without one: ``local`` (supervised processes on this
    machine) or ``ray`` (a Ray Serve application; needs the ``modeldeck[ray]`` extra)."""

    ray_address: str | None = None
    """Address of the Ray cluster that ``ray`` deployments run on (``ray://host:10001`` or
    ``host:6379``). Default: connect to a Ray running on this machine, or start one."""

    ray_http_host: str = "127.0.0.1"
    """Address Ray Serve's HTTP proxy listens on; the gateway forwards ``ray`` deployments'
    requests to it."""

    ray_http_port: int = 8100
    """Port of Ray Serve's HTTP proxy."""

    ray_reconnect_seconds: int = Field(default=15, ge=1, le=3600)
    """How long Ray's driver (a process of the platform's own) waits for a lost cluster before
    it gives up; its ``ray`` deployments are then ``unavailable`` until the cluster is back."""

    log_level: str = "info"
    """Log level of the platform and its replicas."""

    @field_validator("allowed_file_dirs", mode="before")
    @classmethod
    def _split_dirs(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part for part in value.split(os.pathsep) if part.strip()]
        return value

    @field_validator("replica_preload", mode="before")
    @classmethod
    def _split_modules(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def resolved_allowed_file_dirs(self) -> list[Path]:
        """The allowed directories of ``--file`` deployments, resolved."""
        dirs = self.allowed_file_dirs or [self.data_dir / "files", Path.cwd()]
        return [d.expanduser().resolve() for d in dirs]

    def resolved_store_url(self) -> str:
        """The store URL, defaulting to a SQLite file in the data directory."""
        if self.store_url:
            return self.store_url
        return f"sqlite:///{self.data_dir.resolve() / 'modeldeck.db'}"

    def resolved_tracking_uri(self) -> str:
        """The MLflow tracking URI, defaulting to a SQLite store in the data directory."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{self.data_dir.resolve() / 'mlflow.db'}"

    def artifact_root(self) -> str:
        """Where the embedded MLflow store keeps artifacts."""
        return (self.data_dir.resolve() / "mlartifacts").as_uri()

    def resolved_public_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    def logs_dir(self) -> Path:
        return self.data_dir.resolve() / "logs"

    def build_cache_path(self) -> Path:
        """Where builds keep environments: ``build_cache_dir`` or ``<data_dir>/builds``."""
        return (self.build_cache_dir or self.data_dir / "builds").resolve()


class ClientSettings(BaseSettings):
    """Where the Python client and the CLI find the platform."""

    model_config = SettingsConfigDict(
        env_prefix="MODELDECK_", extra="ignore", use_attribute_docstrings=True
    )

    url: str = "http://127.0.0.1:8000"
    """Base URL of the platform, for the client and the CLI."""

    api_key: SecretStr | None = None
    """Control-plane API key the client and the CLI send."""

    access_key: SecretStr | None = None
    """Default deployment access key for ``modeldeck predict``."""

    client_timeout_seconds: float = Field(default=60.0, gt=0)
    """Seconds the client and the CLI wait for each answer from the platform before giving up
    (the CLI's ``--timeout`` overrides it). A long report over a cold week can take longer;
    the platform keeps working on a request the client gave up on."""
