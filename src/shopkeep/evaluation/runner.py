"""Fit a model under a protocol and measure it: :func:`evaluate` returns a frozen :class:`EvalResult`.

The runner builds the ``validate`` callback (seqrec: NDCG@10 on the validation split; sessions:
MRR@20 on the held-out tail of the training sessions) and passes it to ``model.fit``. Models that
declare ``refit_on_validation = True`` are then refit from their config on ``split.refit_train``
(train + validation targets, never a test target) before the test phase — by their own
``refit(train)`` method when they have one (it returns the model to test) — all others are tested as
fitted on the train part. Scoring runs in chunks so full ranking over 40k items stays in memory.
"""

from __future__ import annotations

import hashlib
import json
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from shopkeep.errors import ValidationError
from shopkeep.evaluation.datasets import Dataset
from shopkeep.evaluation.metrics import catalog_coverage, mask_history, metric_table, target_ranks, top_k
from shopkeep.evaluation.protocols import Cases, ProtocolName, make_split
from shopkeep.models.base import SequentialRecommender, ValidateFn

__all__ = [
    "VALIDATION_METRIC",
    "EvalResult",
    "Progress",
    "config_hash",
    "evaluate",
    "make_validate_fn",
    "rank_cases",
    "run_evaluation",
    "score_cases",
]

#: (phase, done, total) — called while scoring; the CLI draws a rich progress bar from it.
Progress = Callable[[str, int, int], None]

#: The number each protocol's validate callback returns (higher is better).
VALIDATION_METRIC: dict[str, tuple[str, int]] = {"seqrec": ("ndcg", 10), "sessions": ("mrr", 20)}

_SCORE_BUDGET_BYTES = 256 * 2**20


@dataclass(frozen=True)
class EvalResult:
    """One evaluation run: test and validation metrics, timings, and what exactly was run."""

    model: str
    dataset: str
    fingerprint: str
    protocol: str
    metrics: dict[str, float]
    validation: dict[str, float]
    train_seconds: float
    eval_seconds: float
    n_cases: int
    n_validation_cases: int
    config: dict[str, Any]
    config_hash: str
    seed: int
    truncate: int | None = None
    refit_on_validation: bool = False
    versions: dict[str, str] = field(default_factory=dict)
    by_input_length: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-able form: test metrics at the top level, validation metrics nested."""
        out = asdict(self)
        metrics = out.pop("metrics")
        return {**out, **metrics}


def config_hash(model_name: str, config: dict[str, Any]) -> str:
    """Short stable hash of a model name and its hyper-parameters.

    >>> config_hash("pop", {}) == config_hash("pop", {})
    True
    """
    doc = json.dumps({"model": model_name, "config": config}, sort_keys=True, default=str)
    return hashlib.sha256(doc.encode()).hexdigest()[:12]


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "numpy": np.__version__}
    for name in ("scipy", "torch", "implicit"):
        module = sys.modules.get(name)
        if module is not None:
            out[name] = str(getattr(module, "__version__", "?"))
    return out


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


def _chunk_size(n_items: int) -> int:
    return int(max(16, min(1024, _SCORE_BUDGET_BYTES // (4 * max(n_items, 1)))))


def score_cases(
    model: SequentialRecommender,
    cases: Cases,
    *,
    on_chunk: Callable[[np.ndarray, slice], None],
    progress: Progress | None = None,
    phase: str = "test",
) -> None:
    """Score ``cases`` in chunks (history masked when the protocol says so); call ``on_chunk(scores, rows)``."""
    n, step = len(cases), _chunk_size(cases.n_items)
    for start in range(0, n, step):
        hist = cases.histories[start : start + step]
        scores = np.array(model.score(hist), dtype=np.float32, copy=True)
        if scores.shape != (len(hist), cases.n_items):
            raise ValidationError(
                "scores", scores.shape, f"model must return ({len(hist)}, {cases.n_items}) for {len(hist)} histories"
            )
        if cases.exclude_history:
            mask_history(scores, hist)
        on_chunk(scores, slice(start, start + len(hist)))
        if progress is not None:
            progress(phase, start + len(hist), n)


def rank_cases(
    model: SequentialRecommender,
    cases: Cases,
    *,
    coverage_k: int | None = None,
    progress: Progress | None = None,
    phase: str = "test",
) -> tuple[np.ndarray, np.ndarray]:
    """Target ranks of every case, and the top-``coverage_k`` items per case (empty if not asked)."""
    ranks = np.empty(len(cases), dtype=np.int64)
    tops: list[np.ndarray] = []

    def collect(scores: np.ndarray, rows: slice) -> None:
        ranks[rows] = target_ranks(scores, cases.targets[rows])
        if coverage_k:
            tops.append(top_k(scores, coverage_k))

    score_cases(model, cases, on_chunk=collect, progress=progress, phase=phase)
    top = np.concatenate(tops) if tops else np.zeros((0, coverage_k or 0), dtype=np.int64)
    return ranks, top


#: Input-length buckets reported beside the test metrics (issue #3: prefixes 1, 2, 3-5, 6+).
LENGTH_BUCKETS: tuple[tuple[str, int, int], ...] = (("1", 1, 1), ("2", 2, 2), ("3-5", 3, 5), ("6+", 6, 1 << 30))


def metrics_by_length(
    ranks: np.ndarray, lengths: np.ndarray, ks: Sequence[int], *, sessions: bool
) -> dict[str, dict[str, float]]:
    """``metric_table`` per input-length bucket of :data:`LENGTH_BUCKETS`, with each bucket's ``cases``.

    >>> out = metrics_by_length(np.array([0, 5, 30]), np.array([1, 2, 7]), [20], sessions=True)
    >>> out["1"]["p@20"], out["6+"]["p@20"], out["6+"]["cases"], "3-5" in out
    (1.0, 0.0, 1.0, False)
    """
    out: dict[str, dict[str, float]] = {}
    for name, lo, hi in LENGTH_BUCKETS:
        pick = (lengths >= lo) & (lengths <= hi)
        if pick.any():
            out[name] = {**metric_table(ranks[pick], ks, sessions=sessions), "cases": float(pick.sum())}
    return out


def _metrics(
    model: SequentialRecommender, cases: Cases, ks: Sequence[int], sessions: bool, progress: Progress | None, phase: str
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    ranks, top = rank_cases(model, cases, coverage_k=max(ks), progress=progress, phase=phase)
    out = metric_table(ranks, ks, sessions=sessions)
    for k in ks:
        out[f"coverage@{k}"] = catalog_coverage(top[:, :k], cases.n_items)
    lengths = np.fromiter((len(h) for h in cases.histories), dtype=np.int64, count=len(cases))
    return out, metrics_by_length(ranks, lengths, ks, sessions=sessions)


@dataclass(frozen=True)
class Validation:
    """The callback handed to ``model.fit``: NDCG@10 (seqrec) or MRR@20 (sessions) on ``cases``.

    It also shows the cases' ``histories`` and ``targets`` (:class:`~shopkeep.models.base.LabeledValidate`)
    for models that learn from the validation split itself, and passes what they :meth:`report` and its own
    scoring passes to ``progress``."""

    cases: Cases
    protocol: ProtocolName
    progress: Progress | None = None

    @property
    def histories(self) -> tuple[np.ndarray, ...]:
        """Each validation case's input history."""
        return self.cases.histories

    @property
    def targets(self) -> np.ndarray:
        """Each validation case's next item."""
        return self.cases.targets

    def __call__(self, model: SequentialRecommender) -> float:
        metric, k = VALIDATION_METRIC[self.protocol]
        ranks, _ = rank_cases(model, self.cases, phase="validate", progress=self.progress)
        return metric_table(ranks, [k])[f"{metric}@{k}"]

    def report(self, phase: str, done: int, total: int) -> None:
        """Pass a model's own progress over the cases to ``progress`` (if any)."""
        if self.progress is not None:
            self.progress(phase, done, total)


def make_validate_fn(cases: Cases, protocol: ProtocolName, progress: Progress | None = None) -> ValidateFn:
    """The callback handed to ``model.fit`` (a :class:`Validation`)."""
    return Validation(cases, protocol, progress)


def evaluate(
    model: SequentialRecommender,
    dataset: Dataset,
    protocol: ProtocolName | None = None,
    ks: Sequence[int] = (5, 10, 20),
    seed: int = 0,
    *,
    truncate: int | None = None,
    max_validation_cases: int | None = None,
    progress: Progress | None = None,
) -> EvalResult:
    """Fit ``model`` on the protocol's train split, validate, test; return every number and its context.

    ``protocol`` defaults to the dataset's format. ``truncate`` cuts every validation and test input to
    its last ``truncate`` items (short-history analysis; training data are unchanged).
    ``max_validation_cases`` subsamples the validation cases (seeded) to make per-epoch validation cheap.
    """
    result, _ = run_evaluation(
        model,
        dataset,
        protocol,
        ks,
        seed,
        truncate=truncate,
        max_validation_cases=max_validation_cases,
        progress=progress,
    )
    return result


def run_evaluation(
    model: SequentialRecommender,
    dataset: Dataset,
    protocol: ProtocolName | None = None,
    ks: Sequence[int] = (5, 10, 20),
    seed: int = 0,
    *,
    truncate: int | None = None,
    max_validation_cases: int | None = None,
    progress: Progress | None = None,
) -> tuple[EvalResult, SequentialRecommender]:
    """Like :func:`evaluate`, and also return the model that was tested (the refit one, if refit)."""
    proto: ProtocolName = protocol or dataset.format
    split = make_split(dataset, proto)
    _seed_everything(seed)
    validation = split.validation.truncated(truncate).subsample(max_validation_cases, seed)
    test = split.test.truncated(truncate)
    sessions = proto == "sessions"
    start = time.perf_counter()
    validate = make_validate_fn(validation, proto, progress) if len(validation) else None
    model.fit(split.fit_train, validate=validate)
    train_seconds = time.perf_counter() - start
    val_metrics = _metrics(model, validation, ks, sessions, progress, "validation")[0] if len(validation) else {}
    refit = bool(getattr(model, "refit_on_validation", False))
    if refit:
        start = time.perf_counter()
        _seed_everything(seed)
        refit_fn = getattr(model, "refit", None)
        if callable(refit_fn):  # e.g. a blend that refits only its closed-form member
            model = refit_fn(split.refit_train)
        else:
            model = type(model)(**model.get_config()).fit(split.refit_train)
        train_seconds += time.perf_counter() - start
    start = time.perf_counter()
    test_metrics, by_length = _metrics(model, test, ks, sessions, progress, "test")
    eval_seconds = time.perf_counter() - start
    config = model.get_config()
    result = EvalResult(
        model=model.name,
        dataset=dataset.name,
        fingerprint=dataset.fingerprint,
        protocol=proto,
        metrics=test_metrics,
        validation=val_metrics,
        train_seconds=round(train_seconds, 3),
        eval_seconds=round(eval_seconds, 3),
        n_cases=len(test),
        n_validation_cases=len(validation),
        config=config,
        config_hash=config_hash(model.name, config),
        seed=seed,
        truncate=truncate,
        refit_on_validation=refit,
        versions=_versions(),
        by_input_length=by_length,
    )
    return result, model
