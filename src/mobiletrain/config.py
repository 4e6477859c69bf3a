"""Server settings, read from arguments or ``MOBILETRAIN_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mobiletrain.core.validation import Limits


class Settings(BaseSettings):
    """Everything a server needs; the defaults are the embedded one-machine set-up."""

    model_config = SettingsConfigDict(env_prefix="MOBILETRAIN_", extra="ignore")

    data_dir: Path = Field(default=Path("mobiletrain-data"), description="Data folder")
    host: str = Field(default="127.0.0.1", description="Address both servers bind")
    auth: bool = Field(default=True, description="Require a token on every call (off: warning)")
    tls_cert_file: Path | None = Field(default=None, description="PEM certificate: TLS on")
    tls_key_file: Path | None = Field(default=None, description="PEM private key of the cert")
    tls_client_ca_file: Path | None = Field(
        default=None, description="PEM CA bundle: clients must present a certificate it signed"
    )
    grpc_port: int = Field(default=50051, description="gRPC port (0 = any free port)")
    http_port: int = Field(default=8000, description="HTTP port (0 = any free port)")
    database_url: str = Field(default="", description="SQLAlchemy URL; default SQLite in data_dir")
    blob_url: str = Field(default="", description="Blob store URL; default data_dir/blobs")
    max_workers: int = Field(default=1, description="Concurrent training worker processes")
    max_job_attempts: int = Field(default=3, description="Attempts before a job fails")
    # One worker process waits with TensorFlow imported, so a job starts in well under a second
    # instead of several (interpreter start and TensorFlow import); it costs ~0.4 GB RSS.
    warm_worker: bool = Field(
        default=True, description="Keep one training worker started ahead (local executor)"
    )
    job_lease_seconds: float = Field(
        default=30.0,
        description="A running job whose worker sent no heartbeat this long is retried",
    )
    base_models_dir: Path | None = Field(default=None, description="Folder of .keras base models")
    grpc_max_message_bytes: int = Field(default=8 * 1024 * 1024, description="gRPC message cap")
    # Threads for synchronous servicer code (WatchJob waits on the event loop, holding none).
    grpc_threads: int = Field(default=64, description="gRPC handler threads")
    # Scaling out (docs/deployment.md): training on a Ray cluster instead of local processes.
    executor: str = Field(default="local", description="Where jobs train: local or ray")
    ray_address: str = Field(
        default="", description="Ray cluster to join (host:6379 or ray://host:10001); empty = local"
    )
    ray_cpus_per_worker: float = Field(default=1.0, description="CPUs per Ray training worker")
    ray_gpus_per_worker: float = Field(default=0.0, description="GPUs per Ray training worker")
    ray_memory_per_worker_mb: int = Field(
        default=0, description="Memory each Ray training worker asks, MiB (0 = no request)"
    )
    ray_work_dir: Path | None = Field(
        default=None, description="Scratch folder on Ray nodes (default: the system temp folder)"
    )
    max_sample_bytes: int = Field(default=20 * 1024 * 1024, description="Largest sample accepted")
    max_samples_per_project: int = Field(default=1_000_000, description="Samples quota")
    max_bytes_per_project: int = Field(default=20 * 1024**3, description="Sample bytes quota")
    max_active_jobs_per_project: int = Field(default=2, description="Queued + running jobs")
    rate_limit_per_second: float = Field(default=100.0, description="Requests/s per token (0=off)")
    rate_limit_burst: int = Field(default=400, description="Burst of requests per token")
    grpc_unary_timeout_seconds: float = Field(
        default=60.0, gt=0, description="Longest a unary gRPC call may run on the server"
    )
    stream_max_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="Longest a stream (gRPC or SSE) stays open; clients reconnect and resume",
    )
    grpc_deadline_grace_seconds: float = Field(
        default=5.0, ge=0, description="After a stream's deadline, how long before it is cut"
    )
    max_streams_per_token: int = Field(default=32, description="Concurrent streams per token")
    max_pixels: int = Field(default=40_000_000, description="Largest image, in pixels")
    # Limits before work (docs/reliability.md, "Hostile clients"): what a request may cost
    # before its token is known.
    max_header_bytes: int = Field(
        default=64 * 1024, gt=0, description="Largest HTTP request line + headers, bytes"
    )
    max_header_count: int = Field(default=100, gt=0, description="Most HTTP request headers")
    body_idle_timeout_seconds: float = Field(
        default=30.0, gt=0, description="A request body that sends nothing this long is cut (408)"
    )
    body_min_bytes_per_second: float = Field(
        default=1024.0, ge=0, description="After that long, a slower body is cut (408)"
    )
    max_requests_per_address: int = Field(
        default=256, ge=0, description="HTTP requests in flight per client address (0 = no cap)"
    )
    max_buffered_body_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=0,
        description="Request body bytes held in memory by all HTTP requests together (0 = no cap)",
    )
    unauthenticated_rate_per_second: float = Field(
        default=20.0, ge=0, description="Failed-token requests/s per client address (0 = off)"
    )
    unauthenticated_burst: int = Field(
        default=200, ge=1, description="Burst of failed-token requests per client address"
    )
    max_labels_per_project: int = Field(
        default=1000, ge=1, description="Most distinct labels in one project"
    )
    federated_devices_per_token: int = Field(
        default=1, ge=1, description="Devices one device token may register per federated session"
    )
    upload_ttl_hours: float = Field(
        default=24.0, gt=0, description="Unfinished resumable uploads expire after this"
    )
    device_sample_access: str = Field(
        default="own",
        pattern="^(own|none)$",
        description="What device tokens read of the dataset: own (what they uploaded) or none",
    )
    # Uploads are refused (STORAGE_FULL, code 74) while free space is below the smaller of the
    # two, so the database, job folders and checkpoints still have room; either 0 = no reserve.
    storage_reserve_mb: float = Field(
        default=256.0, ge=0, description="Free-space reserve for uploads, MiB (0 = off)"
    )
    storage_reserve_percent: float = Field(
        default=5.0, ge=0, le=100, description="Free-space reserve, % of the disk (0 = off)"
    )

    # Deleted samples' bytes leave the packs within about interval + grace (docs/reliability.md,
    # "Durability"). The grace must outlast the time from a blob's put to its row's commit: an
    # upload stream commits a batch when it is full or when the stream ends, so by default it
    # is the longest a stream may stay open plus a margin.
    compaction_interval_seconds: float = Field(
        default=900.0, ge=0, description="How often packs are compacted, s (0 = never)"
    )
    compaction_grace_seconds: float | None = Field(
        default=None,
        ge=0,
        description="Wait between marking a pack and rewriting it, s (default: "
        "stream_max_seconds + grpc_deadline_grace_seconds + 60)",
    )
    compaction_min_dead_fraction: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Rewrite a pack only when this share of it is unreferenced (0 = any byte)",
    )
    compaction_max_delay_seconds: float = Field(
        default=86400.0,
        gt=0,
        description="With a dead-fraction threshold: a pass over every pack at least this often",
    )
    file_mode: str = Field(
        default="600",
        pattern=r"^0?[0-7]{3}$",
        description="Mode of data files in octal (folders get x where r is set): 600 = owner only",
    )

    def resolved_compaction_grace(self) -> float:
        """The compaction grace: as configured, or longer than any upload stream lasts."""
        if self.compaction_grace_seconds is not None:
            return self.compaction_grace_seconds
        return self.stream_max_seconds + self.grpc_deadline_grace_seconds + 60.0

    def data_modes(self) -> tuple[int, int]:
        """(file mode, folder mode) of what the server creates in its data folder."""
        file_mode = int(self.file_mode, 8) & 0o666
        return file_mode, file_mode | ((file_mode & 0o444) >> 2)

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data folder."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'mobiletrain.db').resolve()}"

    def resolved_blob_url(self) -> str:
        """The blob store URL, defaulting to the data folder."""
        return self.blob_url or str((self.data_dir / "blobs").resolve())

    @property
    def tls(self) -> bool:
        """True when both servers speak TLS."""
        return self.tls_cert_file is not None and self.tls_key_file is not None

    def limits(self) -> Limits:
        """Input limits from these settings."""
        return Limits(
            max_sample_bytes=self.max_sample_bytes,
            max_pixels=self.max_pixels,
            max_samples_per_project=self.max_samples_per_project,
            max_bytes_per_project=self.max_bytes_per_project,
            max_active_jobs_per_project=self.max_active_jobs_per_project,
            max_labels_per_project=self.max_labels_per_project,
        )
