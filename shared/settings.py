"""One `Settings` for every service and the operator CLI, read from `ALPR_*` environment variables."""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.bounds import MAX_IMAGE_PIXELS

SERVICES = ("access", "ingest", "recognition", "hotlist")
ServiceName = Literal["access", "ingest", "recognition", "hotlist"]

_PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "minioadmin", "password"}


MIN_SECRET_LENGTH = 32
MIN_SECRET_BITS = 100  # estimated from character frequencies (a 32-digit hex key: ~118)


def strong_secret(value: str) -> bool:
    """Long enough and not repetitive: length times the per-character Shannon entropy reaches MIN_SECRET_BITS
    (a 32-character URL-safe token scores ~150; "a" * 64 scores nothing)."""
    if len(value) < MIN_SECRET_LENGTH:
        return False
    counts = Counter(value)
    per_char = -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())
    return per_char * len(value) >= MIN_SECRET_BITS


MAX_RETENTION_DAYS = 60  # Minn. Stat. 13.824 subd. 3(a)


# The categories the policy lets raise a hit (stolen or wanted vehicles, license status, warrants, AMBER) and agency
# lists of an active criminal investigation (13.824 subd. 3): production may narrow them, never widen them.
POLICY_ALERT_CATEGORIES: frozenset[str] = frozenset(
    {
        "stolen_vehicle",
        "stolen_plate",
        "felony_vehicle",
        "canadian_cpic",
        "amber_alert",
        "wanted_person",
        "license_revoked",
        "license_suspended",
        "license_cancelled",
        "investigation",
    }
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALPR_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("var")
    log_level: str = "INFO"
    log_json: bool = True

    # PostgreSQL. Unset: the runner starts an embedded server in `data_dir` and sets it for the services.
    database_url: str | None = None
    # A streaming standby (read-only) for figures and reports (the log of use, usage counts); unset: the primary.
    # Searches that return reads stay on the primary: their audit entry is written in the same transaction.
    database_url_readonly: str | None = None
    db_pool_size: int = Field(default=10, ge=1)
    db_connect_timeout_s: float = Field(default=3.0, gt=0)
    # Any request body, counted while it streams (routes lower it for themselves: an agent post, a JSON read).
    max_request_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    # Passwords of the services' database roles (`alpr migrate` and `alpr up` set them), JSON {"ingest": "..."}.
    # Unset: made on first run and kept in `data_dir/db-roles.json` (0600).
    db_role_passwords: dict[str, SecretStr] = Field(default_factory=dict)

    # Object store. No endpoint: the local-folder driver under `data_dir/objects`.
    s3_endpoint: str | None = None  # host:port, e.g. "minio:9000"
    s3_access_key: str | None = None
    s3_secret_key: SecretStr | None = None
    s3_bucket: str = "alpr"
    s3_secure: bool = False
    s3_region: str = "us-east-1"
    s3_timeout_s: float = Field(default=5.0, gt=0)

    # Where each service listens, and where the others find it.
    host: str = "127.0.0.1"
    # Reverse proxies (addresses or CIDRs) whose X-Forwarded-For and X-Request-ID are believed; nobody else's.
    trusted_proxies: list[str] = Field(default_factory=list)
    access_port: int = Field(default=8001, ge=1, le=65535)
    ingest_port: int = Field(default=8002, ge=1, le=65535)
    recognition_port: int = Field(default=8003, ge=1, le=65535)
    hotlist_port: int = Field(default=8004, ge=1, le=65535)
    access_url: str | None = None
    ingest_url: str | None = None
    recognition_url: str | None = None
    hotlist_url: str | None = None

    # Tokens: asymmetric signatures only, verified against the access service's key set.
    jwt_algorithm: Literal["ES256", "RS256"] = "ES256"
    jwt_audience: str = "alpr"
    jwt_issuer: str = "alpr-access"
    jwt_leeway_s: int = Field(default=30, ge=0)
    # Keys folder (PEM private keys, newest signs). Unset: `data_dir/keys`.
    jwt_keys_dir: Path | None = None
    # Verify against this JWKS URL instead of the keys folder (services deployed apart from access).
    jwks_url: str | None = None
    # How long a verifier trusts the key set it read: a key removed after a rotation is refused within this.
    jwks_cache_s: int = Field(default=60, ge=1)
    # Revocations published by access (logout, refresh reuse, disable, lock, re-key): re-read this often by every
    # service, so an ended session stops working everywhere within it; kept in memory for the longest token life.
    revocation_refresh_s: float = Field(default=1.0, gt=0, le=30)
    revocation_horizon_s: float = Field(default=86_400.0, gt=0)

    # This service's own identity for calls to other services (client-credentials grant at the access service).
    service_client_id: str | None = None
    service_client_secret: SecretStr | None = None

    # Ingest: shifts, reads from the cars, calls to recognition and hotlist.
    ingest_shift_max_hours: float = Field(default=12.0, gt=0)
    ingest_max_photo_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    ingest_max_crop_bytes: int = Field(default=1024 * 1024, ge=1024)
    ingest_max_image_pixels: int = Field(default=MAX_IMAGE_PIXELS, ge=1)  # checked on the header, pre-decode
    ingest_clock_skew_s: float = Field(default=120.0, ge=0)  # how far in the future a capture time may be
    ingest_max_read_age_days: int = Field(default=60, ge=1)  # older reads are past retention: refused
    # A Safe at Home request waiting for a second supervisor this long is overdue: /readyz warns, a metric counts it.
    ingest_safe_at_home_confirm_days: int = Field(default=3, ge=1, le=30)
    # 13.055 sets no number of days for a government entity's notice ("in the most expedient time possible and
    # without unreasonable delay"): the agency's own reading of it, a target counted from discovery (paused while a
    # law-enforcement delay is in force); and of "upon completion of the investigation" for the report.
    breach_notice_target_days: int = Field(default=30, ge=1, le=365)
    breach_report_target_days: int = Field(default=10, ge=0, le=365)
    ingest_batch_max_items: int = Field(default=50, ge=1, le=500)
    ingest_call_recognition: bool = True  # send reads without plate text to recognition
    ingest_second_read: bool = False  # also run recognition on reads that came with the car's plate text
    ingest_call_hotlist: bool = True  # match every read through hotlist
    ingest_recognition_timeout_s: float = Field(default=3.0, gt=0)
    ingest_hotlist_timeout_s: float = Field(default=0.5, gt=0)
    # `alpr up` runs ingest as this many uvicorn processes (uvicorn restarts one that dies): one crash keeps intake.
    ingest_processes: int = Field(default=2, ge=1, le=64)
    ingest_worker_interval_s: float = Field(default=2.0, gt=0)  # how often pending work is retried
    ingest_worker_batch: int = Field(default=50, ge=1)
    ingest_worker_recognition_concurrency: int = Field(default=4, ge=1)  # photos sent at once when draining
    ingest_hotlist_poll_s: float = Field(default=30.0, ge=0)  # 0: do not poll hotlist's version
    ingest_commit_batch_max: int = Field(default=256, ge=1)  # reads per group commit
    # A batch (lookup, Safe at Home check, match call, commit) waits this long for reads in flight, once; 0: never.
    ingest_batch_linger_ms: float = Field(default=2.0, ge=0, le=50)
    ingest_stream_poll_s: float = Field(default=0.5, gt=0)  # SSE check for events written by other processes
    # Camera agents (OpenALPR alprd, Rekor Scout) posting to /v1/agents/openalpr/<token>.
    ingest_agent_max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    ingest_agent_segment_bytes: int = Field(default=64 * 1024 * 1024, ge=4096)  # spool segment sealed past this
    ingest_agent_segment_age_s: float = Field(default=60.0, gt=0)  # ... or this old (imported ones are deleted)
    ingest_agent_import_interval_s: float = Field(default=0.5, gt=0)  # how often the spool is imported
    ingest_agent_import_bytes: int = Field(default=4 * 1024 * 1024, ge=4096)  # spool bytes per import batch
    # True: the spool is imported by `python -m services.ingest.agents`, a process of its own (`alpr up` starts it),
    # not in ingest's workers, whose answers to the agents then never wait behind an import round.
    ingest_agent_import_process: bool = False
    ingest_agent_backlog_ready_max: int = Field(default=20000, ge=1)  # unmatched agent reads before a /readyz warning
    ingest_agent_registry_refresh_s: float = Field(default=5.0, gt=0)  # agents (tokens) re-read this often
    ingest_agent_active_gap_s: float = Field(default=150.0, gt=0)  # posts closer than this: one active interval
    ingest_agent_second_read: bool = False  # also read agents' plate crops with our recognition
    # A car-mounted agent's read without GPS takes its unit's MDC position nearest the capture time within this many
    # seconds (a car at 30 m/s moves 900 m in 30 s); none that close: the read is stored without a position.
    ingest_agent_mdc_position_max_age_s: float = Field(default=30.0, ge=0, le=600)
    # Positions a unit's MDC posts on its own (POST /v1/units/{unit}/position) are kept this long, no longer: the
    # agents' import may lag a capture by this much and still find the car's position. Not a track of the car.
    ingest_unit_position_keep_s: float = Field(default=900.0, gt=0, le=86400)

    # Hotlist: the BCA hot-list sync (a scheduled job in the hotlist service, or `alpr hotlist sync`).
    hotlist_source_url: str | None = None  # unset: no scheduled sync
    hotlist_sync_interval_s: float = Field(default=3600.0, gt=0)
    hotlist_sync_scheduled: bool = True  # false: only `alpr hotlist sync` and POST /v1/hotlist/sync
    # Credentials travel in a header, never in the URL.
    hotlist_source_header: str = "Authorization"
    hotlist_source_credential: SecretStr | None = None
    hotlist_source_ca_file: Path | None = None  # a private CA for the source; unset: the system's trust store
    hotlist_source_timeout_s: float = Field(default=30.0, gt=0)
    hotlist_source_retries: int = Field(default=3, ge=0)
    hotlist_source_backoff_s: float = Field(default=1.0, ge=0)
    hotlist_max_bytes: int = Field(default=200_000_000, ge=1)  # compressed and decompressed
    hotlist_max_bad_share: float = Field(default=0.05, ge=0, le=1)  # above it the old list stays in force
    hotlist_stale_after_s: float = Field(default=86_400.0, gt=0)
    # A new extract with fewer entries than the list in force by more than this share is refused as cut off.
    hotlist_max_drop_share: float = Field(default=0.10, ge=0, le=1)
    hotlist_sync_deadline_s: float = Field(default=600.0, gt=0)  # the whole download of one sync attempt
    hotlist_sync_failures_degraded: int = Field(default=3, ge=1)  # failed syncs in a row: /readyz degraded
    hotlist_versions_kept: int = Field(default=3, ge=2)
    hotlist_poll_s: float = Field(default=2.0, gt=0)  # how often a worker checks for a new version
    hotlist_disposition_due_s: float = Field(default=3600.0, gt=0)  # hits without disposition after this: listed
    # The categories that raise a hit: the policy's list (stolen or wanted vehicles, license status, warrants) and
    # agency lists of an active criminal investigation (13.824 subd. 3). Other BCA categories stay loaded (the list
    # is the BCA's file) and never alert.
    hotlist_alert_categories: frozenset[str] = POLICY_ALERT_CATEGORIES  # production: a subset of it

    # Retention (Minn. Stat. 13.824 subd. 3): reads, photos and hits go this many days after capture unless held.
    # At most 60 in production (the statute's period; a case keeps data longer through a hold, never this setting).
    retention_days: int = Field(default=60, ge=1)
    # /readyz says "degraded" (and the log alerts) when no purge finished within this long, or the purge is off.
    retention_purge_late_s: float = Field(default=2 * 86_400.0, gt=0)
    # Holds' review (13.824 subd. 3(d): inactive investigative data follow the 138.17 records schedule): a hold is
    # reviewed this many days after it was placed (or last reviewed), and listed to supervisors when due.
    hold_review_days: int = Field(default=365, ge=1, le=3650)
    retention_purge_scheduled: bool = True  # false: only `alpr purge`
    retention_purge_interval_s: float = Field(default=3600.0, gt=0)  # cheap when nothing is due
    # How many days before the cutoff the purge and the check list in the object store (orphans, late uploads).
    retention_object_lookback_days: int = Field(default=14, ge=1)
    # A photo no read refers to goes at the purge once this old. A read's photo is written before its row commits;
    # the grace is what keeps an in-flight read's photo (seconds between the two) from being taken for an orphan.
    purge_orphan_grace_s: float = Field(default=3600.0, ge=60)

    # Recognition: OCR worker threads (unset: one per core), requests allowed to wait for one, upload limits.
    recognition_workers: int | None = Field(default=None, ge=1)
    recognition_queue: int = Field(default=8, ge=0)
    # ONNX Runtime threads per model run, and whether they spin while waiting for work. Measured on 2 cores
    # (docs/recognition-cpu.md): spinning threads burn CPU whenever they are descheduled, and workers x threads
    # beyond the cores only adds contention, so one thread per OCR worker, no spinning.
    recognition_intra_op_threads: int = Field(default=1, ge=1)
    recognition_spin: bool = False
    recognition_max_image_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    recognition_max_batch: int = Field(default=16, ge=1)
    # Text-detection passes (longest side, px), coarse to fine; (960, 1600) reads better and costs ~40 % more.
    recognition_detect_sides: tuple[int, ...] = (640, 1024)
    # The second, plate-specific reader (issue 27) and its weights (unset: the copy shipped in the repository, checked
    # by SHA-256 at start-up: a file whose sum differs refuses to start the service).
    recognition_second_reader: bool = True
    recognition_second_reader_weights: Path | None = None

    # The audit chain's secret (keyed seals, signed checkpoints): a file outside the database, made on first run.
    # Unset: `<keys folder>/audit-chain.key`. Back it up apart from the database: without it nothing can be checked.
    audit_key_file: Path | None = None
    # The access service seals and publishes this often (and at every verify and at shutdown): the longest an entry
    # stays covered by the plain chain only, which the database owner could cut unseen.
    audit_checkpoint_interval_s: float = Field(default=10.0, gt=0)
    audit_checkpoint_scheduled: bool = True

    # /metrics asks for `Authorization: Bearer <this>` when set; unset, it is for the internal network only.
    metrics_token: SecretStr | None = None

    # Secret for signing image links. Unset: `<keys folder>/url-signing.key`, made at deployment (secret_files.py).
    url_signing_secret: SecretStr | None = None
    # How long presigned image and document links live.
    presign_ttl_s: int = Field(default=300, ge=10, le=3600)

    # Access service: token lifetimes and the CJIS session rules.
    access_token_ttl_s: int = Field(default=600, ge=30)
    session_idle_s: int = Field(default=1800, ge=60)  # a session ends after 30 idle minutes
    session_max_s: int = Field(default=12 * 3600, ge=60)  # refresh tokens die with the session at the latest
    # Failed logins throttle the source (services/access/throttle.py), never hard-lock the account: this many
    # failures per source and account, per source, and per account from all sources, within `login_lockout_s`.
    login_max_failures: int = Field(default=5, ge=1)
    login_source_max_failures: int = Field(default=20, ge=1)
    login_account_max_failures: int = Field(default=100, ge=1)
    login_lockout_s: int = Field(default=1800, ge=1)
    # Where the log-in throttle and the public log's limit count: "postgresql" (shared by several access replicas),
    # or a `limits` storage URI (the default, in-process memory, is for one access process).
    login_throttle_storage: str = "async+memory://"
    # CJIS asks for a second factor: when true, a person without TOTP enrolled cannot log in.
    require_second_factor: bool = False
    # Argon2id cost for people's passwords. Tests lower it; production refuses less than OWASP's minimum.
    password_time_cost: int = Field(default=3, ge=1)
    password_memory_kib: int = Field(default=65536, ge=8)
    password_parallelism: int = Field(default=4, ge=1)
    # Grants: the default and the longest a supervisor may give.
    grant_default_days: int = Field(default=7, ge=1)
    grant_max_days: int = Field(default=30, ge=1)
    # Without a warrant or an exigency, a request's area is at most this radius: a plate plus a city-wide circle
    # is a location history (Minn. Stat. 13.824 subd. 2(d)), so it needs the warrant a history needs.
    access_area_max_m_without_warrant: float = Field(default=2000.0, gt=0)
    # A warrant number is a court file number in this form (a regular expression; Minnesota district courts:
    # county-type-year-sequence, e.g. 27-CR-26-9876).
    warrant_number_format: str = r"[0-9]{2}-[A-Z]{1,4}-[0-9]{2}-[0-9]{1,7}"
    court_order_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    # The public log of use (no token): each period's answer kept this long; new computations per source limited.
    public_report_cache_s: float = Field(default=300.0, ge=0)
    public_report_limit: str = "10/minute"  # a `limits` rate string
    # The public transparency page (same cache and limit): a link to the agency's published use policy, `{agency}`
    # replaced by the page's ORI; empty: the page shows the policy's terms without a link.
    transparency_policy_url: str = Field(default="", max_length=500)

    # Calls from access to ingest's archived-read search.
    search_timeout_s: float = Field(default=10.0, gt=0)

    @field_validator("database_url", "database_url_readonly")
    @classmethod
    def _asyncpg_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
            if value.startswith(prefix):
                return "postgresql+asyncpg://" + value[len(prefix) :]
        raise ValueError("database_url must be a postgresql:// URL (PostgreSQL is the only database)")

    @field_validator("url_signing_secret", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("warrant_number_format")
    @classmethod
    def _a_pattern(cls, value: str) -> str:
        re.compile(value)  # a re.error is a ValueError: refused at start
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            ipaddress.ip_network(entry, strict=False)  # raises ValueError for a bad address or CIDR
        return value

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Settings:
        if self.environment == "production":
            secret = self.url_signing_secret.get_secret_value() if self.url_signing_secret else None
            if secret is not None and (secret.startswith("dev-") or secret in _PLACEHOLDER_SECRETS):
                raise ValueError("ALPR_URL_SIGNING_SECRET must be set to a real secret in production")
            named = {"ALPR_URL_SIGNING_SECRET": self.url_signing_secret, "ALPR_SERVICE_CLIENT_SECRET":
                     self.service_client_secret, **{f"ALPR_DB_ROLE_PASSWORDS[{k}]": v
                                                    for k, v in self.db_role_passwords.items()}}  # fmt: skip
            for name, value in named.items():
                if value is not None and not strong_secret(value.get_secret_value()):
                    raise ValueError(
                        f"{name} is too weak for production: use at least {MIN_SECRET_LENGTH} random characters "
                        f"(an estimated {MIN_SECRET_BITS}+ bits), e.g. from `openssl rand -base64 32`"
                    )
            if self.s3_endpoint and (
                self.s3_secret_key is None or self.s3_secret_key.get_secret_value() in _PLACEHOLDER_SECRETS
            ):
                raise ValueError("ALPR_S3_SECRET_KEY must be set to a real secret in production")
            if self.database_url is None:
                raise ValueError("ALPR_DATABASE_URL is required in production")
            if self.retention_days > MAX_RETENTION_DAYS:
                raise ValueError(
                    f"ALPR_RETENTION_DAYS is at most {MAX_RETENTION_DAYS} in production (Minn. Stat. 13.824 subd. 3): "
                    "keep data longer for a case with a hold"
                )
            if self.password_memory_kib < 19456 or self.password_time_cost < 2:
                raise ValueError("argon2 cost below the OWASP minimum (19 MiB, 2 passes) is for tests only")

            beyond = sorted(self.hotlist_alert_categories - POLICY_ALERT_CATEGORIES)
            if beyond:
                raise ValueError(
                    f"ALPR_HOTLIST_ALERT_CATEGORIES may not alert on {', '.join(beyond)} in production: the policy's "
                    f"categories are {', '.join(sorted(POLICY_ALERT_CATEGORIES))}"
                )
            if self.hotlist_source_url and not self.hotlist_source_url.startswith("https://"):
                raise ValueError("ALPR_HOTLIST_SOURCE_URL must be https:// in production (the list travels with TLS)")
        if self.s3_endpoint and not (self.s3_access_key and self.s3_secret_key):
            raise ValueError("ALPR_S3_ACCESS_KEY and ALPR_S3_SECRET_KEY are required with ALPR_S3_ENDPOINT")
        return self

    def port_of(self, service: ServiceName) -> int:
        port: int = getattr(self, f"{service}_port")
        return port

    def url_of(self, service: ServiceName) -> str:
        explicit: str | None = getattr(self, f"{service}_url")
        return (explicit or f"http://{self.host}:{self.port_of(service)}").rstrip("/")

    @property
    def keys_dir(self) -> Path:
        return self.jwt_keys_dir or self.data_dir / "keys"

    @property
    def objects_dir(self) -> Path:
        return self.data_dir / "objects"


@lru_cache
def get_settings() -> Settings:
    return Settings()
