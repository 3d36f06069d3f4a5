"""Judge backends behind one small interface (`base.Backend`), loaded by name and cached."""

from __future__ import annotations

from workers.backends.base import Backend
from workers.models import resolve_model

BACKENDS = ("transformers", "vllm", "openai")


def load_backend(backend: str, model: str, base_url: str | None = None) -> Backend:
    """A backend for a model: a packaged name or local folder (or, for openai, a served name)."""
    if backend == "transformers":
        from workers.backends.transformers_backend import TransformersBackend

        return TransformersBackend(resolve_model(model))
    if backend == "vllm":
        from workers.backends.vllm_backend import VLLMBackend

        return VLLMBackend(resolve_model(model))
    if backend == "openai":
        from workers.backends.openai_backend import OpenAIBackend

        if not base_url:
            raise ValueError("the openai backend needs a base_url")
        return OpenAIBackend(base_url, model)
    raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")


class BackendCache:
    """Loaded backends by (backend, model, base_url); one model stays loaded at a time."""

    def __init__(self) -> None:
        self._key: tuple[str, str, str | None] | None = None
        self._backend: Backend | None = None

    def get(self, backend: str, model: str, base_url: str | None = None) -> Backend:
        """The backend for this job, loading it (and dropping the previous one) if needed."""
        key = (backend, model, base_url)
        if self._backend is None or self._key != key:
            if self._backend is not None:
                self._backend.close()
            self._backend, self._key = load_backend(backend, model, base_url), key
        return self._backend
