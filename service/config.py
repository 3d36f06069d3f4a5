"""Settings for every Arbiter process, read from ARBITER_* environment variables."""

from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Arbiter's configuration; every field can be set as ARBITER_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="ARBITER_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./arbiter.db",
        description="SQLAlchemy URL of the system of record: a SQLite file (default) or "
        "postgresql+psycopg://user@host/db.",
    )
    db_pool_size: int = Field(
        default=10, ge=1, description="Database connections kept open per process."
    )
    db_max_overflow: int = Field(
        default=10, ge=0, description="Extra PostgreSQL connections allowed under bursts."
    )
    sqlite_busy_timeout_ms: int = Field(
        default=30_000, ge=0, description="How long a SQLite writer waits for the write lock."
    )
    default_lease_seconds: int = Field(
        default=600, ge=5, description="Lease of an assignment when the project sets none."
    )
    import_batch_size: int = Field(
        default=1000, ge=1, description="Lines inserted per batch during a JSONL import."
    )
    max_import_errors: int = Field(
        default=100, ge=1, description="Errors listed in an import report before it stops listing."
    )
    page_size_max: int = Field(default=500, ge=1, description="Largest `limit` a listing accepts.")
    auth_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long a process trusts a verified API key before looking it up again "
        "(a revoked key stops working everywhere within this time).",
    )
    bootstrap_admin_key: str | None = Field(
        default=None,
        description="If set and no user exists yet, the first admin is created with this key "
        "instead of a random one.",
    )
    host: str = Field(default="127.0.0.1", description="Address `arbiter serve` binds.")
    port: int = Field(default=8000, description="Port `arbiter serve` listens on.")
    workers: int = Field(default=1, ge=1, description="Server processes `arbiter serve` runs.")
    sqlite_quick_inline: bool = Field(
        default=True,
        description="On SQLite, run leases and submits (about a millisecond each) on the event "
        "loop instead of the threadpool: faster, but a writer of another process holding the "
        "lock (e.g. `arbiter import`) stalls the server meanwhile.",
    )
    sqlite_background_checkpoint: bool = Field(
        default=True,
        description="On SQLite with one server process, checkpoint the WAL from a background "
        "thread instead of inside the commit that fills it (a 10-200 ms stall of every request "
        "in flight). With several processes SQLite's own checkpoint stays.",
    )
    quick_submit: bool = Field(
        default=True,
        description="Answer common-case label submits (a live lease, a pairwise or binary label) "
        "on the database driver directly, below FastAPI and the ORM: about twice the submits "
        "per second. Off, every submit takes the full route (same answers, slower).",
    )
    threads: int = Field(
        default=4,
        ge=1,
        description="Database threads per server process (requests beyond wait their turn; "
        "fewer threads contend less for the GIL).",
    )
    model_cache: Path = Field(
        default=Path.home() / ".cache" / "arbiter" / "models",
        description="Workers: where packaged models (SmolLM2) are converted to, once.",
    )
    vllm_cpu_kv_cache_bytes: int = Field(
        default=256 * 2**20, ge=2**20, description="Workers: vLLM's KV cache on a CPU."
    )
    vllm_engine_args: dict[str, Any] = Field(
        default_factory=dict,
        description='Workers: extra vllm.LLM arguments, as JSON, e.g. {"tensor_parallel_size": 2}.',
    )
    artifacts_dir: Path = Field(
        default=Path("artifacts"),
        description="Training workers: where each job's folder (model, metrics, manifest) goes.",
    )
    openai_api_key: str | None = Field(
        default=None, description="Workers: bearer token for the openai backend's server."
    )


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings (read once from the environment)."""
    return Settings()
