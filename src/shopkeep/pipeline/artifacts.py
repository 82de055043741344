"""Versioned model artifacts: the OFFLINE path's output and what the running Engine hot-swaps to.

``train_artifacts`` reads interaction sequences back from the event log, fits the configured models
on all of them and writes one directory per version::

    <root>/<version>/manifest.json     {"version", "created_at", "models", "item_ids", "fingerprint", ...}
    <root>/<version>/<model name>/     the model's own save() output (npz/safetensors + JSON, no pickle)
    <root>/<version>/ranker/           the learned re-ranker (LightGBM text + JSON; pipeline.ranker_training),
                                       absent when it was skipped (the manifest's ``ranker`` says why)
    <root>/LATEST                      the newest complete version (replaced atomically)

A version directory is written under a temporary name and renamed when complete, so a reader never
sees half an artifact. Model item indices are positions in ``manifest.item_ids``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from shopkeep.errors import NotFoundError, ValidationError
from shopkeep.events.log import EVENTS_LOG
from shopkeep.models.base import Interactions, SequentialRecommender
from shopkeep.models.registry import create_model, load_model
from shopkeep.pipeline.training import interaction_sequences
from shopkeep.storage.base import Store

__all__ = [
    "MANIFEST",
    "RANKER",
    "ArtifactManifest",
    "LoadedArtifacts",
    "latest_artifacts",
    "load_artifacts",
    "popularity_counts",
    "read_manifest",
    "read_popularity",
    "train_artifacts",
]

MANIFEST = "manifest.json"
POPULARITY = "popularity.json"
#: The learned re-ranker's directory inside a version.
RANKER = "ranker"
_LATEST = "LATEST"
#: Bumped when the directory layout changes.
LAYOUT_VERSION = 1


@dataclass(frozen=True, slots=True)
class ArtifactManifest:
    """What one artifact version holds and what it was trained on."""

    version: str
    created_at: str
    models: tuple[str, ...]
    item_ids: tuple[str, ...]
    fingerprint: str
    n_sequences: int
    n_interactions: int
    train_seconds: Mapping[str, float]
    ranker: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to ``manifest.json``."""
        return {"layout_version": LAYOUT_VERSION, "version": self.version, "created_at": self.created_at,
                "models": list(self.models), "item_ids": list(self.item_ids), "fingerprint": self.fingerprint,
                "n_sequences": self.n_sequences, "n_interactions": self.n_interactions,
                "train_seconds": dict(self.train_seconds), "ranker": dict(self.ranker) if self.ranker else None}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ArtifactManifest:
        """Inverse of :meth:`to_dict`; ValidationError names a missing or bad field."""
        for name in ("version", "created_at", "models", "item_ids", "fingerprint"):
            if name not in raw:
                raise ValidationError(f"manifest.{name}", None, "is required")
        if raw.get("layout_version", LAYOUT_VERSION) != LAYOUT_VERSION:
            raise ValidationError("manifest.layout_version", raw.get("layout_version"),
                                  f"unsupported; this shopkeep reads {LAYOUT_VERSION}")
        return cls(str(raw["version"]), str(raw["created_at"]), tuple(raw["models"]), tuple(raw["item_ids"]),
                   str(raw["fingerprint"]), int(raw.get("n_sequences", 0)), int(raw.get("n_interactions", 0)),
                   dict(raw.get("train_seconds", {})), raw.get("ranker"))


@dataclass(frozen=True)
class LoadedArtifacts:
    """A manifest, its directory and its fitted models by name."""

    path: Path
    manifest: ArtifactManifest
    models: Mapping[str, SequentialRecommender]

    @property
    def version(self) -> str:
        """The artifact version."""
        return self.manifest.version


def _fingerprint(sequences: Mapping[str, Sequence[str]]) -> str:
    digest = hashlib.sha256()
    for key in sorted(sequences):
        digest.update(f"{key}\t{' '.join(sequences[key])}\n".encode())
    return digest.hexdigest()[:16]


def _interactions(sequences: Mapping[str, Sequence[str]]) -> tuple[Interactions, tuple[str, ...]]:
    kept = [seq for _, seq in sorted(sequences.items()) if len(seq) >= 2]
    if not kept:
        raise ValidationError("events", 0, "no shopper has two or more item interactions to train on")
    item_ids = tuple(sorted({item for seq in kept for item in seq}))
    index = {item: i for i, item in enumerate(item_ids)}
    arrays = tuple(np.fromiter((index[i] for i in seq), dtype=np.int64, count=len(seq)) for seq in kept)
    return Interactions(arrays, len(item_ids)), item_ids


def _new_version(root: Path, fingerprint: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    version = f"{stamp}-{fingerprint[:8]}"
    n = 1
    while (root / version).exists():
        n += 1
        version = f"{stamp}-{fingerprint[:8]}-{n}"
    return version


def train_artifacts(
    store: Store,
    root: str | Path,
    models: Sequence[str] = ("itemknn",),
    *,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    progress: Callable[[str], None] | None = None,
    ranker: bool = True,
    ranker_params: Mapping[str, Any] | None = None,
) -> ArtifactManifest:
    """Fit ``models`` on every shopper's interaction sequence in ``store`` and write a new version;
    with ``ranker`` also the learned re-ranker (``ranker_params`` go to
    :func:`~shopkeep.pipeline.ranker_training.train_ranker`, e.g. ``trees``, ``objective``)."""
    if not models:
        raise ValidationError("models", list(models), "name at least one model")
    say = progress or (lambda message: None)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    say("reading interaction sequences from the event log")
    sequences = interaction_sequences(store)
    train, item_ids = _interactions(sequences)
    fingerprint = _fingerprint(sequences)
    version = _new_version(root, fingerprint)
    tmp = root / f".{version}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    seconds: dict[str, float] = {}
    try:
        for name in dict.fromkeys(models):
            say(f"fitting {name} on {len(train.sequences):,} sequences, {train.n_items:,} items")
            start = time.perf_counter()
            model = create_model(name, **dict((params or {}).get(name, {})))
            model.fit(train)
            model.save(tmp / name)
            seconds[name] = round(time.perf_counter() - start, 3)
        report = _train_ranker(store, tmp / RANKER, ranker_params, say) if ranker else None
        if report is not None:
            seconds["ranker"] = round(report["seconds"], 3)
        manifest = ArtifactManifest(version, datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                                    tuple(dict.fromkeys(models)), item_ids, fingerprint, len(train.sequences),
                                    train.n_interactions, seconds, report)
        say("counting popularity from the event log")
        (tmp / POPULARITY).write_text(json.dumps(popularity_counts(store)), encoding="utf-8")
        (tmp / MANIFEST).write_text(json.dumps(manifest.to_dict(), indent=1), encoding="utf-8")
        os.replace(tmp, root / version)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    pointer = root / f".{_LATEST}.tmp"
    pointer.write_text(version + "\n", encoding="utf-8")
    os.replace(pointer, root / _LATEST)
    say(f"wrote artifacts {version}")
    return manifest


def _train_ranker(store: Store, out: Path, params: Mapping[str, Any] | None,
                  say: Callable[[str], None]) -> dict[str, Any]:
    from shopkeep.catalog import CatalogRepository
    from shopkeep.catalog.snapshot import CatalogSnapshot
    from shopkeep.pipeline.ranker_training import train_ranker

    snapshot = CatalogSnapshot.from_repository(CatalogRepository(store))
    report = train_ranker(store, snapshot, out, progress=say, **dict(params or {}))
    say(f"re-ranker: {report.mode}{' (' + report.reason + ')' if report.mode == 'skipped' else ''}")
    return report.to_dict()


def read_manifest(path: str | Path) -> ArtifactManifest:
    """The manifest of the version directory ``path``."""
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise NotFoundError(f"no artifact manifest at {file}", {"path": str(file)})
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValidationError("manifest", str(file), f"is not valid JSON: {exc}") from None
    return ArtifactManifest.from_dict(raw)


def latest_artifacts(root: str | Path) -> Path | None:
    """The newest complete version directory under ``root`` (by its LATEST pointer), or None."""
    pointer = Path(root) / _LATEST
    if not pointer.is_file():
        return None
    path = Path(root) / pointer.read_text(encoding="utf-8").strip()
    return path if (path / MANIFEST).is_file() else None


def load_artifacts(path: str | Path) -> LoadedArtifacts:
    """Load a version directory (or an artifacts root: its LATEST version) with all its models."""
    path = Path(path)
    if not (path / MANIFEST).is_file():
        latest = latest_artifacts(path)
        if latest is None:
            raise NotFoundError(f"no artifacts at {path} (run `shopkeep train` first)", {"path": str(path)})
        path = latest
    manifest = read_manifest(path)
    models = {name: load_model(path / name) for name in manifest.models}
    return LoadedArtifacts(path, manifest, models)


def popularity_counts(store: Store, *, half_life_hours: float = 72.0) -> dict[str, Any]:
    """Time-decayed and all-time event counts per item over the whole event log (the ``popular`` source's state)."""
    from shopkeep.retrieval.sources import EVENT_WEIGHTS

    tau_ms = half_life_hours * 3_600_000.0 / math.log(2.0)
    trend: dict[str, float] = {}
    total: dict[str, float] = {}
    rows: list[tuple[int, str, float]] = []
    after = 0
    while True:
        page = store.read(EVENTS_LOG, after_seq=after, k=20_000)
        for record in page:
            event = orjson.loads(record.payload)
            weight = EVENT_WEIGHTS.get(event["type"], 0.0)
            item = event.get("item_id")
            if item is not None and weight > 0:
                rows.append((record.ts_ms, item, weight))
        if len(page) < 20_000:
            break
        after = page[-1].seq
    ref = max((ts for ts, _, _ in rows), default=None)
    for ts, item, weight in rows:
        assert ref is not None
        trend[item] = trend.get(item, 0.0) + weight * math.exp((ts - ref) / tau_ms)
        total[item] = total.get(item, 0.0) + weight
    return {"trend": trend, "total": total, "ref_ms": ref, "half_life_hours": half_life_hours}


def read_popularity(path: str | Path) -> dict[str, Any] | None:
    """The popularity counts saved with a version (None when absent)."""
    file = Path(path) / POPULARITY
    if not file.is_file():
        return None
    data: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    return data
