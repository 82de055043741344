"""Learned re-ranking of a blend's top candidates for the next item of a session ("stacking").

The z-score blend of :mod:`shopkeep.models.blend` mixes its members with one weight for every session.
What each member is good at varies: the transformer knows where long sessions go, item-item
similarity from the last item is sharper after one click, a session often returns to an item it has
already viewed, and how likely that is depends on the session. :class:`CandidateStacker` learns
that from the validation split: it takes the blend's top ``n_candidates`` items per history, describes
each (history, candidate) pair with :func:`candidate_features` (the members' scores and ranks, the
repeat signals, similarity to the last item, popularity overall and recent, the history's length), and
fits a LightGBM LambdaRank model whose order replaces the blend's among those candidates; every other
item keeps the blend's order below them.

Features (:data:`FEATURE_NAMES`) depend only on ids and counts, so the stacker works on any catalog
with or without item attributes. The booster is stored as LightGBM's text model (no pickle).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from shopkeep.errors import ValidationError
from shopkeep.models.registry import read_artifact, write_artifact

__all__ = [
    "FEATURE_NAMES",
    "CandidateStacker",
    "StackInputs",
    "candidate_features",
    "mrr_at",
    "stacked_scores",
    "target_rank_after",
    "top_candidates",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]

#: One column per feature of :func:`candidate_features`, in order.
FEATURE_NAMES: tuple[str, ...] = (
    "z_transformer",
    "z_knn",
    "blend",
    "blend_position",
    "transformer_rank",
    "knn_rank",
    "transformer_log_softmax",
    "transformer_gap",
    "knn_gap",
    "in_history",
    "history_distance",
    "history_count",
    "last_item_similarity",
    "log_popularity",
    "log_recent_popularity",
    "history_length",
    "history_unique",
)


@dataclass(frozen=True)
class StackInputs:
    """What the features need besides the members' scores: fitted once per training set.

    ``similarity`` is the item-item matrix (CSR, rows = the history's item), ``popularity`` and
    ``recent_popularity`` are per-item counts over all training sequences and over their most recent
    share."""

    similarity: sp.csr_matrix
    popularity: FloatArray
    recent_popularity: FloatArray

    @classmethod
    def from_sequences(
        cls, sequences: Sequence[IntArray], n_items: int, similarity: sp.csr_matrix, recent_share: float = 0.05
    ) -> StackInputs:
        """Counts over ``sequences`` (time order) and over their last ``recent_share``."""
        if not 0.0 < recent_share <= 1.0:
            raise ValidationError("recent_share", recent_share, "must be within (0, 1]")
        seqs = [np.asarray(s, dtype=np.int64) for s in sequences]
        flat = np.concatenate(seqs) if seqs else np.zeros(0, dtype=np.int64)
        recent_n = max(1, round(len(seqs) * recent_share)) if seqs else 0
        recent = np.concatenate(seqs[len(seqs) - recent_n :]) if recent_n else np.zeros(0, dtype=np.int64)
        pop = np.bincount(flat, minlength=n_items).astype(np.float32)
        rec = np.bincount(recent, minlength=n_items).astype(np.float32)
        return cls(sp.csr_matrix(similarity, dtype=np.float32), pop, rec)


def top_candidates(blend: FloatArray, n: int) -> IntArray:
    """The ``n`` highest-scoring items per row of ``blend``, best first (equal scores: lower index first;
    which of several items tied at the ``n``-th score make the cut is argpartition's choice)."""
    n = min(n, blend.shape[1])
    part = np.argpartition(-blend, n - 1, axis=1)[:, :n]
    vals = np.take_along_axis(blend, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    return np.take_along_axis(part, order, axis=1).astype(np.int64)


def _rank_within(values: FloatArray) -> FloatArray:
    """Per row, each column's rank (0 = highest) among that row's columns."""
    order = np.argsort(-values, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(values.shape[1])[None, :].repeat(values.shape[0], 0), axis=1)
    return ranks.astype(np.float32)


def _log_softmax_at(scores: FloatArray, cand: IntArray) -> FloatArray:
    """``log softmax(scores)`` at the ``cand`` columns, computed in float64 (torch's logsumexp when torch is
    installed: ~1.5x faster than numpy's exp over 40k columns)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is in the ml extra
        s = scores.astype(np.float64)
        top = s.max(axis=1, keepdims=True)
        lse = top + np.log(np.exp(s - top).sum(axis=1, keepdims=True))
    else:
        lse = torch.logsumexp(torch.from_numpy(np.ascontiguousarray(scores)).double(), dim=1, keepdim=True).numpy()
    out: FloatArray = (np.take_along_axis(scores, cand, axis=1).astype(np.float64) - lse).astype(np.float32)
    return out


def candidate_features(
    histories: Sequence[IntArray],
    z_transformer: FloatArray,
    z_knn: FloatArray,
    transformer: FloatArray,
    blend: FloatArray,
    inputs: StackInputs,
    n_candidates: int,
) -> tuple[IntArray, FloatArray]:
    """The top ``n_candidates`` of ``blend`` per history and their features ``(rows, n_candidates, F)``.

    ``z_transformer`` / ``z_knn`` are the members' row-standardized scores, ``transformer`` the
    transformer's raw logits (for its log-softmax), ``blend`` the blend of the two z-scores."""
    n = len(histories)
    cand = top_candidates(blend, n_candidates)
    c = cand.shape[1]
    zs = np.take_along_axis(z_transformer, cand, axis=1)
    zk = np.take_along_axis(z_knn, cand, axis=1)
    feats = np.empty((n, c, len(FEATURE_NAMES)), dtype=np.float32)
    feats[..., 0] = zs
    feats[..., 1] = zk
    feats[..., 2] = np.take_along_axis(blend, cand, axis=1)
    feats[..., 3] = np.arange(c, dtype=np.float32)[None, :]
    feats[..., 4] = _rank_within(zs)
    feats[..., 5] = _rank_within(zk)
    feats[..., 6] = _log_softmax_at(transformer, cand)
    feats[..., 7] = zs - z_transformer.max(axis=1, keepdims=True)
    feats[..., 8] = zk - z_knn.max(axis=1, keepdims=True)
    last = np.array([int(h[-1]) if len(h) else 0 for h in histories], dtype=np.int64)
    sim_rows = inputs.similarity[last]
    sim_dense = np.asarray(sim_rows.toarray(), dtype=np.float32)
    sim_max = np.maximum(sim_dense.max(axis=1, keepdims=True), 1e-12)
    feats[..., 12] = np.take_along_axis(sim_dense, cand, axis=1) / sim_max
    feats[..., 13] = np.log1p(inputs.popularity[cand])
    feats[..., 14] = np.log1p(inputs.recent_popularity[cand])
    for r, hist in enumerate(histories):
        h = np.asarray(hist, dtype=np.int64)[::-1]
        items, first, counts = np.unique(h, return_index=True, return_counts=True)
        pos = np.searchsorted(items, cand[r])
        pos = np.minimum(pos, max(items.size - 1, 0))
        hit = items[pos] == cand[r] if items.size else np.zeros(c, dtype=bool)
        feats[r, :, 9] = hit
        feats[r, :, 10] = np.where(hit, first[pos], np.nan) if items.size else np.nan
        feats[r, :, 11] = np.where(hit, counts[pos], 0) if items.size else 0
        feats[r, :, 15] = h.size
        feats[r, :, 16] = items.size
    return cand, feats


#: LightGBM parameters of the stacker: LambdaRank on binary relevance (the next item is the one relevant
#: candidate), deterministic (the same model with 1 or 2 threads: checked on Diginetica's features).
DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "lambdarank",
    "metric": "map",
    "eval_at": [20],
    "num_leaves": 31,
    "min_data_in_leaf": 200,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambdarank_truncation_level": 30,
    "verbose": -1,
    "deterministic": True,
    "force_row_wise": True,
}


def mrr_at(ranks: IntArray, k: int = 20) -> float:
    """MRR@k of 0-based target ranks (0 for a miss).

    >>> mrr_at(np.array([0, 1, 25]))
    0.5
    """
    hit = ranks < k
    return float(np.where(hit, 1.0 / (ranks + 1.0), 0.0).mean()) if ranks.size else 0.0


def stacked_scores(blend: FloatArray, cand: IntArray, pred: FloatArray) -> FloatArray:
    """Full score rows: the candidates above every other item, in the order of ``pred``; the others keep
    ``blend``'s order below them."""
    out = np.array(blend, dtype=np.float32, copy=True)
    row_max = out.max(axis=1, keepdims=True)
    lift = row_max + 1.0 + (pred - pred.min(axis=1, keepdims=True))
    np.put_along_axis(out, cand, lift.astype(np.float32), axis=1)
    return out


def target_rank_after(pred: FloatArray, labels: FloatArray, blend_ranks: IntArray) -> IntArray:
    """Each case's target rank once its candidates are re-ordered by ``pred`` (0 = first; ties count against
    the target, as in the evaluation); a target outside the candidates keeps its blend rank (all
    candidates stay above it)."""
    hit = labels.sum(axis=1) > 0
    target_score = (pred * labels).sum(axis=1)
    above = (pred >= target_score[:, None]).sum(axis=1) - 1
    return np.where(hit, above, blend_ranks).astype(np.int64)


class CandidateStacker:
    """A LightGBM ranker over the blend's top candidates; see the module docstring.

    ``n_candidates``: how many of the blend's best items it re-orders. ``candidate_weight``: the blend
    weight of the transformer that picks them. ``train_share``: the earlier part of the validation cases
    (in their order: time, for sessions) it learns from; the later rest checks it (:meth:`fit`).
    ``rounds`` boosting rounds at ``learning_rate`` (fixed: early stopping on MAP@20 of a few thousand
    sessions stopped far too early on Diginetica). ``recent_share``: the most recent share of the training
    sequences whose item counts are the ``log_recent_popularity`` feature. ``max_cases``: at most this many
    validation cases, spread evenly over them in order (features take ``n_candidates x 17`` floats per case:
    100k cases are ~0.7 GB).
    """

    name = "candidate_stacker"

    def __init__(
        self,
        n_candidates: int = 100,
        candidate_weight: float = 0.85,
        train_share: float = 0.8,
        rounds: int = 200,
        learning_rate: float = 0.05,
        recent_share: float = 0.05,
        num_threads: int = 2,
        seed: int = 0,
        max_cases: int = 100_000,
    ) -> None:
        self.n_candidates = int(n_candidates)
        self.candidate_weight = float(candidate_weight)
        self.train_share = float(train_share)
        self.rounds = int(rounds)
        self.learning_rate = float(learning_rate)
        self.recent_share = float(recent_share)
        self.num_threads = int(num_threads)
        self.seed = int(seed)
        self.max_cases = int(max_cases)
        self._check_params()
        self.booster_: Any = None
        #: Held-out MRR@20 of the stacker and of the blend it re-ranks (set by :meth:`fit`).
        self.report_: dict[str, float] = {}

    def _check_params(self) -> None:
        if not 1 <= self.n_candidates <= 10_000:
            raise ValidationError("n_candidates", self.n_candidates, "must be within [1, 10000]")
        if not 0.0 <= self.candidate_weight <= 1.0:
            raise ValidationError("candidate_weight", self.candidate_weight, "must be within [0, 1]")
        if not 0.0 < self.train_share < 1.0:
            raise ValidationError("train_share", self.train_share, "must be within (0, 1)")
        if self.rounds < 1:
            raise ValidationError("rounds", self.rounds, "must be >= 1")
        if not 0.0 < self.learning_rate <= 1.0:
            raise ValidationError("learning_rate", self.learning_rate, "must be within (0, 1]")
        if not 0.0 < self.recent_share <= 1.0:
            raise ValidationError("recent_share", self.recent_share, "must be within (0, 1]")
        if self.num_threads < 1:
            raise ValidationError("num_threads", self.num_threads, "must be >= 1")
        if self.max_cases < 10:
            raise ValidationError("max_cases", self.max_cases, "must be >= 10")

    def get_config(self) -> dict[str, Any]:
        """The constructor's keyword arguments."""
        return {
            "n_candidates": self.n_candidates,
            "candidate_weight": self.candidate_weight,
            "train_share": self.train_share,
            "rounds": self.rounds,
            "learning_rate": self.learning_rate,
            "recent_share": self.recent_share,
            "num_threads": self.num_threads,
            "seed": self.seed,
            "max_cases": self.max_cases,
        }

    def case_rows(self, n: int) -> IntArray:
        """Which of ``n`` validation cases to learn from: all, or ``max_cases`` spread evenly, in order.

        >>> CandidateStacker(max_cases=10).case_rows(100).tolist()
        [0, 11, 22, 33, 44, 55, 66, 77, 88, 99]
        """
        if n <= self.max_cases:
            return np.arange(n, dtype=np.int64)
        return np.unique(np.linspace(0, n - 1, self.max_cases).round().astype(np.int64))

    def _params(self) -> dict[str, Any]:
        return {**DEFAULT_PARAMS, "learning_rate": self.learning_rate, "num_threads": self.num_threads,
                "seed": self.seed}

    def fit(self, feats: FloatArray, labels: FloatArray, blend_ranks: IntArray) -> CandidateStacker:
        """Learn from the first ``train_share`` of the cases (features ``(rows, C, F)``, ``labels`` 1 where a
        candidate is the next item, ``blend_ranks`` the target's rank under the blend); measure MRR@20 of
        the stacked order and of the blend on the rest into :attr:`report_`. Cases whose target is not
        among the candidates teach nothing and are left out of training."""
        import lightgbm as lgb

        n = feats.shape[0]
        cut = int(n * self.train_share)
        keep = labels[:cut].sum(axis=1) > 0
        if not keep.any():
            raise ValidationError("labels", 0, "no training case has its target among the candidates")
        x, y = feats[:cut][keep], labels[:cut][keep]
        data = lgb.Dataset(
            x.reshape(-1, x.shape[2]), y.reshape(-1), group=np.full(x.shape[0], x.shape[1]),
            feature_name=list(FEATURE_NAMES),
        )
        self.booster_ = lgb.train(self._params(), data, self.rounds)
        held = slice(cut, n)
        stacked = target_rank_after(self.predict(feats[held]), labels[held], blend_ranks[held])
        self.report_ = {
            "stacked_mrr@20": mrr_at(stacked),
            "blend_mrr@20": mrr_at(blend_ranks[held]),
            "held_out_cases": float(n - cut),
        }
        return self

    def predict(self, feats: FloatArray) -> FloatArray:
        """Scores ``(rows, C)`` for features ``(rows, C, F)``."""
        if self.booster_ is None:
            raise ValidationError("stacker", None, "not fitted")
        out = self.booster_.predict(feats.reshape(-1, feats.shape[2]), num_threads=self.num_threads)
        return np.asarray(out, dtype=np.float32).reshape(feats.shape[0], feats.shape[1])

    def save(self, path: Path, inputs: StackInputs) -> None:
        """Write ``model.json`` (config, report), ``arrays.npz`` (the popularity counts of ``inputs``) and
        ``booster.txt`` (LightGBM's text model) into ``path``."""
        if self.booster_ is None:
            raise ValidationError("stacker", None, "not fitted")
        arrays = {"popularity": inputs.popularity, "recent_popularity": inputs.recent_popularity}
        write_artifact(path, self.name, self.get_config(), arrays, {"report": self.report_})
        (Path(path) / _BOOSTER_FILE).write_text(self.booster_.model_to_string(), encoding="utf-8")

    @classmethod
    def load(cls, path: Path, similarity: sp.csr_matrix) -> tuple[CandidateStacker, StackInputs]:
        """Read a stacker written by :meth:`save`, and its inputs (``similarity`` from the knn member)."""
        import lightgbm as lgb

        doc, arrays = read_artifact(path, cls.name)
        model = cls(**doc["config"])
        model.report_ = {str(k): float(v) for k, v in doc.get("meta", {}).get("report", {}).items()}
        booster_path = Path(path) / _BOOSTER_FILE
        if not booster_path.is_file():
            raise ValidationError("path", str(path), f"no {_BOOSTER_FILE} here: not a saved stacker")
        model.booster_ = lgb.Booster(model_str=booster_path.read_text(encoding="utf-8"))
        pop, rec = arrays.get("popularity"), arrays.get("recent_popularity")
        if pop is None or rec is None or pop.shape != rec.shape or pop.shape[0] != similarity.shape[0]:
            raise ValidationError("arrays", str(path), "popularity counts missing or not one per item")
        return model, StackInputs(sp.csr_matrix(similarity, dtype=np.float32), pop.astype(np.float32),
                                  rec.astype(np.float32))


_BOOSTER_FILE = "booster.txt"
