"""Lazy registry of recommendation models, and the shared artifact format (npz + JSON, no pickle).

Models are registered by name as ``"module:Class"`` strings and imported only when created, so
``import shopkeep`` never pulls in torch or implicit.

>>> "pop" in available_models()
True
>>> create_model("pop").name
'pop'
>>> try:
...     create_model("nope")
... except ValidationError as err:
...     print(err.field, err.value, err.reason.split(";")[0])
model nope unknown model

Artifacts: a model directory holds ``model.json`` (``{"format_version", "model", "config", "meta"}``)
and ``arrays.npz`` (loaded with ``allow_pickle=False``). :func:`load_model` reads any of them back.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from shopkeep.errors import ValidationError
from shopkeep.models.base import SequentialRecommender

__all__ = [
    "BEST_MODEL",
    "BEST_MODELS",
    "FALLBACK_MODELS",
    "FORMAT_VERSION",
    "MODELS",
    "available_models",
    "best_model",
    "create_model",
    "load_model",
    "model_class",
    "read_artifact",
    "write_artifact",
]

#: name -> "module:Class"; imported lazily by :func:`create_model`.
MODELS: dict[str, str] = {
    "pop": "shopkeep.models.popularity:PopularityRecommender",
    "itemknn": "shopkeep.models.itemknn:ItemKNNRecommender",
    "session_knn": "shopkeep.models.itemknn:SessionKNNRecommender",
    "als": "shopkeep.models.als:ALSRecommender",
    "segment_pop": "shopkeep.models.segment_pop:SegmentPopularityRecommender",
    "sasrec": "shopkeep.models.sasrec:SASRec",
    "sasrec_session": "shopkeep.models.sasrec:SASRecSession",
    "two_tower": "shopkeep.models.two_tower:TwoTower",
    "content_knn": "shopkeep.models.content:ContentKNN",
    "sasrec_knn": "shopkeep.models.blend:SASRecKNNBlend",
    "sasrec_session_knn": "shopkeep.models.blend:SASRecSessionKNNBlend",
    # cold-start lookalike profiles live with exploration (layer 4); the name is only imported on use
    "lookalike": "shopkeep.explore.lookalike:LookalikeRecommender",
}

#: The shipped default per protocol, chosen before the final test runs (benchmarks/quality/blend_NOTES.md):
#: seqrec -> the SASRec + itemknn blend (its weight is picked on validation, w = 0 is itemknn alone, so it
#: never validates below itemknn); sessions -> sasrec_session_knn (a session transformer trained with
#: logQ-corrected sampled softmax for a few minutes, blended with session_knn; w = 0 is session_knn alone;
#: benchmarks/quality/diginetica_NOTES.md). Without torch: session_knn (itemknn + a repeat term).
BEST_MODELS: dict[str, str] = {"seqrec": "sasrec_knn", "sessions": "sasrec_session_knn"}
#: What a model needs beyond the core install; without it, :func:`best_model` falls back to ``FALLBACK_MODEL``.
_NEEDS_TORCH = frozenset({"sasrec", "sasrec_session", "sasrec_knn", "sasrec_session_knn", "two_tower", "content_knn"})
FALLBACK_MODEL = "itemknn"
#: Per-protocol fallbacks where torch is missing (sessions keep the repeat-aware session_knn).
FALLBACK_MODELS: dict[str, str] = {"sessions": "session_knn"}
BEST_MODEL = BEST_MODELS["seqrec"]


def best_model(protocol: str) -> str:
    """The default model for ``protocol`` that can run here (torch-based ones need the ``ml`` extra).

    >>> best_model("sessions") in {"sasrec_session_knn", "session_knn"}
    True
    """
    name = BEST_MODELS.get(protocol, FALLBACK_MODEL)
    if name in _NEEDS_TORCH and importlib.util.find_spec("torch") is None:
        return FALLBACK_MODELS.get(protocol, FALLBACK_MODEL)
    return name


#: Version of the on-disk artifact layout written by :func:`write_artifact`.
FORMAT_VERSION = 1

_META_FILE = "model.json"
_ARRAYS_FILE = "arrays.npz"


def available_models() -> list[str]:
    """Registered model names whose module can be imported, sorted."""
    names = []
    for name, target in MODELS.items():
        if importlib.util.find_spec(target.split(":")[0]) is not None:
            names.append(name)
    return sorted(names)


def model_class(name: str) -> type[SequentialRecommender]:
    """The class registered under ``name`` (imports its module)."""
    if name not in MODELS:
        raise ValidationError("model", name, f"unknown model; available: {', '.join(sorted(MODELS))}")
    module_name, _, attr = MODELS[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ValidationError("model", name, f"module {module_name} is not installed ({exc.name})") from None
    cls: type[SequentialRecommender] = getattr(module, attr)
    return cls


def create_model(name: str, **params: Any) -> SequentialRecommender:
    """Instantiate the model registered under ``name`` with hyper-parameters ``params``."""
    cls = model_class(name)
    try:
        return cls(**params)
    except TypeError as exc:
        raise ValidationError("params", sorted(params), f"not accepted by model {name!r}: {exc}") from None


def write_artifact(
    path: Path,
    model: str,
    config: Mapping[str, Any],
    arrays: Mapping[str, npt.NDArray[Any]],
    meta: Mapping[str, Any] | None = None,
) -> None:
    """Write ``model.json`` and ``arrays.npz`` into the directory ``path`` (created if needed)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {k: np.asarray(v) for k, v in arrays.items()}
    np.savez(path / _ARRAYS_FILE, allow_pickle=False, **payload)
    doc = {"format_version": FORMAT_VERSION, "model": model, "config": dict(config), "meta": dict(meta or {})}
    (path / _META_FILE).write_text(json.dumps(doc, indent=2, sort_keys=True), encoding="utf-8")


def read_artifact(path: Path, model: str | None = None) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
    """Read an artifact: returns ``(document, arrays)``; checks the format version and the model name."""
    path = Path(path)
    meta_path = path / _META_FILE
    if not meta_path.is_file():
        raise ValidationError("path", str(path), f"no {_META_FILE} here: not a saved model")
    try:
        doc = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValidationError(str(meta_path), exc.msg, "is not valid JSON", line=exc.lineno) from None
    if doc.get("format_version") != FORMAT_VERSION:
        raise ValidationError("format_version", doc.get("format_version"), f"expected {FORMAT_VERSION}")
    if model is not None and doc.get("model") != model:
        raise ValidationError("model", doc.get("model"), f"artifact is not a {model!r} model")
    arrays: dict[str, npt.NDArray[Any]] = {}
    npz_path = path / _ARRAYS_FILE
    if npz_path.is_file():
        with np.load(npz_path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    return doc, arrays


def load_model(path: Path) -> SequentialRecommender:
    """Load any saved model: the class is chosen by ``model`` (a registered name) or ``class`` in ``model.json``."""
    doc, _ = read_artifact(Path(path))
    name = doc.get("model")
    if name is None and "class" in doc:
        name = next((n for n, target in MODELS.items() if target.endswith(f":{doc['class']}")), None)
    if name is None:
        raise ValidationError("model", doc.get("class"), f"{path}/model.json names no registered model")
    return model_class(str(name)).load(Path(path))
