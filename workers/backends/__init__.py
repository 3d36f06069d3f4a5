"""Judge backends behind one small interface (`base.Backend`), loaded by name and cached."""

from __future__ import annotations

from typing import Any

from service.config import Settings
from service.worker import JobConfigError
from workers.backends.base import Backend
from workers.models import ModelNotFound, resolve_model

BACKENDS = ("transformers", "vllm", "openai")


def load_backend(
    backend: str,
    model: str,
    settings: Settings,
    *,
    base_url: str | None = None,
    tokenizer: str | None = None,
) -> Backend:
    """A backend for a model: a packaged name or local folder (or, for openai, a served name)."""
    cache = settings.model_cache
    if backend == "transformers":
        from workers.backends.transformers_backend import TransformersBackend

        return TransformersBackend(resolve_model(model, cache))
    if backend == "vllm":
        from workers.backends.vllm_backend import VLLMBackend

        return VLLMBackend(
            resolve_model(model, cache),
            cpu_kv_cache_bytes=settings.vllm_cpu_kv_cache_bytes,
            **settings.vllm_engine_args,
        )
    if backend == "openai":
        from workers.backends.openai_backend import OpenAIBackend

        if not base_url:
            raise ValueError("the openai backend needs a base_url")
        return OpenAIBackend(
            base_url,
            model,
            tokenizer=resolve_model(tokenizer or model, cache),
            api_key=settings.openai_api_key,
        )
    raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")


class BackendCache:
    """The loaded backend of the last job's (backend, model, base_url, tokenizer); one at a time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._key: tuple[Any, ...] | None = None
        self._backend: Backend | None = None

    def get(self, config: dict[str, Any]) -> Backend:
        """The backend a job's config asks for, loading it (and dropping the previous one);
        a model no worker can find fails the job (JobConfigError), it is not retried."""
        key = tuple(config.get(k) for k in ("backend", "model", "base_url", "tokenizer"))
        if self._backend is None or self._key != key:
            if self._backend is not None:
                self._backend.close()
                self._backend = None
            try:
                self._backend = load_backend(
                    config["backend"],
                    config["model"],
                    self.settings,
                    base_url=config.get("base_url"),
                    tokenizer=config.get("tokenizer"),
                )
            except ModelNotFound as exc:
                raise JobConfigError(f"config.model: {exc}") from exc
            self._key = key
        return self._backend
