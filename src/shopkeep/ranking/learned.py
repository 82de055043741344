"""The learned re-ranker: two LightGBM heads over :mod:`shopkeep.ranking.features`, calibrated.

* click head: p(click or next item), ``lambdarank`` over each request's candidates (labels: target
  2, other new items 1) or ``binary``;
* purchase head: p(purchase), ``binary`` with positives up-weighted (``purchase_pos_weight``; rare
  positives learn better), which is why its raw output is *not* a probability.

Both raw outputs are mapped to probabilities by isotonic regression fitted on a held-out window
(:class:`Isotonic`), and :func:`expected_calibration_error` measures them. The model saves as a
directory: ``click.txt`` and ``purchase.txt`` (``Booster.model_to_string``) and ``ranker.json``
(format, feature names, sources, calibration, item stats, training parameters and the
:class:`~shopkeep.ranking.objective.Objective` it serves with) — no pickle. LightGBM is imported
lazily: ``import shopkeep.ranking`` works without it.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.errors import NotFittedError, ValidationError
from shopkeep.features.context import Context
from shopkeep.ranking.dataset import LabeledRequests
from shopkeep.ranking.features import MISSING_RANK, SERVING_POSITION, FeatureBuilder, Fused, ItemStats

__all__ = ["FORMAT", "Isotonic", "LearnedModel", "expected_calibration_error", "lightgbm_available"]

FloatArray = npt.NDArray[np.float64]
FORMAT = "shopkeep.learned_ranker/1"


def lightgbm_available() -> bool:
    """Whether ``lightgbm`` can be imported."""
    try:
        importlib.import_module("lightgbm")
    except ImportError:
        return False
    return True


def _lgb() -> Any:
    return importlib.import_module("lightgbm")


def expected_calibration_error(p: npt.ArrayLike, y: npt.ArrayLike, n_bins: int = 15) -> float:
    """ECE with equal-mass (quantile) bins, ties kept together: ``sum_b (n_b / n) |mean(p_b) - mean(y_b)|``.

    >>> round(expected_calibration_error([0.1, 0.1, 0.9, 0.9], [0, 0, 1, 1], 2), 3)
    0.1
    """
    prob, lab = np.asarray(p, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if prob.shape != lab.shape or prob.size == 0:
        raise ValidationError("p", prob.shape, f"need as many probabilities as labels ({lab.shape}), > 0")
    edges = np.unique(np.quantile(prob, np.linspace(0.0, 1.0, n_bins + 1)))
    which = np.searchsorted(edges[1:-1], prob, side="right")  # equal values always share a bin
    total = 0.0
    for b in np.unique(which):
        sel = which == b
        total += sel.sum() * abs(prob[sel].mean() - lab[sel].mean())
    return float(total / prob.size)


@dataclass(frozen=True)
class Isotonic:
    """A non-decreasing map from raw scores to probabilities (pool-adjacent-violators), interpolated."""

    x: tuple[float, ...]
    y: tuple[float, ...]

    @classmethod
    def fit(cls, scores: npt.ArrayLike, labels: npt.ArrayLike) -> Isotonic:
        """Fit on raw ``scores`` and 0/1 ``labels``."""
        s, lab = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.float64)
        if s.size == 0 or s.shape != lab.shape:
            raise ValidationError("scores", s.shape, "need one label per score, at least one")
        order = np.argsort(s, kind="stable")
        xs, ys, ws = [], [], []
        for xv, yv in zip(s[order].tolist(), lab[order].tolist(), strict=True):
            xs.append([xv, xv])
            ys.append(yv)
            ws.append(1.0)
            while len(ys) > 1 and ys[-2] >= ys[-1]:
                w = ws[-2] + ws[-1]
                ys[-2] = (ys[-2] * ws[-2] + ys[-1] * ws[-1]) / w
                ws[-2] = w
                xs[-2][1] = xs[-1][1]
                del xs[-1], ys[-1], ws[-1]
        px = [v for (lo, hi) in xs for v in ((lo, hi) if hi > lo else (lo,))]
        py = [y for (lo, hi), y in zip(xs, ys, strict=True) for _ in ((lo, hi) if hi > lo else (lo,))]
        return cls(tuple(px), tuple(py))

    def __call__(self, scores: npt.ArrayLike) -> FloatArray:
        """Probabilities for raw ``scores``."""
        return np.asarray(np.interp(np.asarray(scores, dtype=np.float64), self.x, self.y), dtype=np.float64)


def _labels(data: LabeledRequests, fused: Sequence[Sequence[Fused]]) -> tuple[FloatArray, FloatArray, list[int]]:
    grades: list[int] = []
    bought: list[bool] = []
    groups: list[int] = []
    for g, p, cands in zip(data.grades, data.purchases, fused, strict=True):
        grades.extend(g.get(c.item_id, 0) for c in cands)
        bought.extend(c.item_id in p for c in cands)
        groups.append(len(cands))
    return np.asarray(grades, dtype=np.float64), np.asarray(bought, dtype=np.float64), groups


class LearnedModel:
    """Two calibrated LightGBM heads (see the module docstring); a ``PurchaseModel`` for the Ranker."""

    def __init__(self, *, click_objective: str = "lambdarank", n_estimators: int = 150, learning_rate: float = 0.05,
                 num_leaves: int = 31, min_data_in_leaf: int = 50, purchase_pos_weight: float = 20.0,
                 num_threads: int = 1, seed: int = 0) -> None:
        if click_objective not in ("lambdarank", "binary"):
            raise ValidationError("click_objective", click_objective, "must be lambdarank or binary")
        if n_estimators <= 0 or num_leaves < 2 or not learning_rate > 0 or not purchase_pos_weight > 0:
            raise ValidationError("params", (n_estimators, num_leaves, learning_rate, purchase_pos_weight),
                                  "need n_estimators > 0, num_leaves >= 2, learning_rate > 0, pos weight > 0")
        self.params: dict[str, Any] = {
            "click_objective": click_objective, "n_estimators": n_estimators, "learning_rate": learning_rate,
            "num_leaves": num_leaves, "min_data_in_leaf": min_data_in_leaf,
            "purchase_pos_weight": purchase_pos_weight, "num_threads": num_threads, "seed": seed}
        self.builder_: FeatureBuilder | None = None
        self.boosters_: dict[str, Any] = {}
        self.calibration_: dict[str, Isotonic] = {}

    def _lgb_params(self, objective: str) -> dict[str, Any]:
        p = self.params
        out = {"objective": objective, "learning_rate": p["learning_rate"], "num_leaves": p["num_leaves"],
               "min_data_in_leaf": p["min_data_in_leaf"], "num_threads": p["num_threads"], "seed": p["seed"],
               "deterministic": True, "force_row_wise": True, "verbosity": -1}
        if objective == "lambdarank":
            out.update({"lambdarank_truncation_level": 20, "eval_at": [10]})
        return out

    def fit(self, train: LabeledRequests, train_fused: Sequence[Sequence[Fused]], calibration: LabeledRequests,
            calibration_fused: Sequence[Sequence[Fused]], snapshot: CatalogSnapshot, stats: ItemStats,
            sources: Sequence[str], positions: Sequence[Mapping[str, int]] | None = None) -> Self:
        """Train both heads on ``train`` and fit their calibration on the later ``calibration`` window.

        ``positions``: logged served positions per training request (position as a feature; serving
        then sets it to the constant ``SERVING_POSITION``)."""
        if len(train) == 0 or len(calibration) == 0:
            raise ValidationError("train", (len(train), len(calibration)), "need training and calibration requests")
        lgb = _lgb()
        builder = FeatureBuilder(sources, stats, SERVING_POSITION if positions is not None else MISSING_RANK)
        x = builder.build(train.contexts, train_fused, snapshot, positions)
        grades, bought, groups = _labels(train, train_fused)
        n_trees = self.params["n_estimators"]
        click_obj = self.params["click_objective"]
        click_y = grades if click_obj == "lambdarank" else (grades > 0).astype(np.float64)
        click_set = lgb.Dataset(x, click_y, group=groups if click_obj == "lambdarank" else None,
                                feature_name=list(builder.names), free_raw_data=False)
        weight = np.where(bought > 0, self.params["purchase_pos_weight"], 1.0)
        buy_set = lgb.Dataset(x, bought, weight=weight, feature_name=list(builder.names), free_raw_data=False)
        self.boosters_ = {"click": lgb.train(self._lgb_params(click_obj), click_set, num_boost_round=n_trees),
                          "purchase": lgb.train(self._lgb_params("binary"), buy_set, num_boost_round=n_trees)}
        self.builder_ = builder
        raw = self.raw_scores(calibration.contexts, calibration_fused, snapshot)
        c_grades, c_bought, _ = _labels(calibration, calibration_fused)
        self.calibration_ = {"click": Isotonic.fit(raw["click"], c_grades > 0),
                             "purchase": Isotonic.fit(raw["purchase"], c_bought)}
        return self

    def restat(self, stats: ItemStats) -> Self:
        """Serve with item statistics (popularity, recency) taken as of a later time, e.g. the end of the log."""
        if self.builder_ is None:
            raise NotFittedError("LearnedModel is not fitted: call fit() or load()")
        self.builder_ = FeatureBuilder(self.builder_.sources, stats, self.builder_.serving_position)
        return self

    def raw_scores(self, contexts: Sequence[Context], fused: Sequence[Sequence[Fused]],
                   snapshot: CatalogSnapshot) -> dict[str, FloatArray]:
        """Uncalibrated head outputs for every candidate, requests concatenated (purchase: raw probability)."""
        if self.builder_ is None or not self.boosters_:
            raise NotFittedError("LearnedModel is not fitted: call fit() or load()")
        x = self.builder_.build(contexts, fused, snapshot)
        if x.shape[0] == 0:
            return {"click": np.zeros(0), "purchase": np.zeros(0)}
        # one thread: request batches are small and OpenMP start-up would dominate
        return {h: np.asarray(b.predict(x, num_threads=1), dtype=np.float64) for h, b in self.boosters_.items()}

    def predict_heads_many(self, contexts: Sequence[Context], fused: Sequence[Sequence[Fused]],
                           snapshot: CatalogSnapshot) -> list[tuple[FloatArray, FloatArray]]:
        """Calibrated (p_click, p_purchase) per candidate, one pair of arrays per request (batch first)."""
        raw = self.raw_scores(contexts, fused, snapshot)
        p_click, p_buy = self.calibration_["click"](raw["click"]), self.calibration_["purchase"](raw["purchase"])
        cuts = np.cumsum([len(f) for f in fused])[:-1]
        return list(zip(np.split(p_click, cuts), np.split(p_buy, cuts), strict=True))

    def predict(self, context: Context, fused: Sequence[Fused], snapshot: CatalogSnapshot) -> FloatArray:
        """Calibrated p(purchase) per candidate (the ``PurchaseModel`` capability)."""
        return self.predict_heads_many([context], [fused], snapshot)[0][1]

    def to_json(self, objective: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The JSON part of the saved model."""
        if self.builder_ is None:
            raise NotFittedError("LearnedModel is not fitted: nothing to save")
        return {"format": FORMAT, "params": self.params, "objective": dict(objective or {}),
                "sources": list(self.builder_.sources), "feature_names": list(self.builder_.names),
                "serving_position": self.builder_.serving_position, "stats": self.builder_.stats.to_dict(),
                "calibration": {h: {"x": list(c.x), "y": list(c.y)} for h, c in self.calibration_.items()}}

    def save(self, path: str | Path, objective: Mapping[str, Any] | None = None) -> Path:
        """Write the model directory (``click.txt``, ``purchase.txt``, ``ranker.json``); returns it."""
        out = Path(path)
        meta = self.to_json(objective)
        out.mkdir(parents=True, exist_ok=True)
        for head, booster in self.boosters_.items():
            (out / f"{head}.txt").write_text(booster.model_to_string(), encoding="utf-8")
        (out / "ranker.json").write_text(json.dumps(meta, sort_keys=True), encoding="utf-8")
        return out

    @classmethod
    def load(cls, path: str | Path) -> tuple[LearnedModel, dict[str, Any]]:
        """Read a model directory; returns the model and the saved objective (a dict, maybe empty)."""
        root = Path(path)
        try:
            meta = json.loads((root / "ranker.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValidationError("path", str(root), f"not a learned ranker directory: {exc}") from exc
        if meta.get("format") != FORMAT:
            raise ValidationError("format", meta.get("format"), f"expected {FORMAT}")
        lgb = _lgb()
        model = cls(**meta["params"])
        model.builder_ = FeatureBuilder(meta["sources"], ItemStats.from_dict(meta["stats"]),
                                        float(meta["serving_position"]))
        if list(model.builder_.names) != meta["feature_names"]:
            raise ValidationError("feature_names", meta["feature_names"], "do not match this version's features")
        model.boosters_ = {h: lgb.Booster(model_str=(root / f"{h}.txt").read_text(encoding="utf-8"))
                           for h in ("click", "purchase")}
        model.calibration_ = {h: Isotonic(tuple(c["x"]), tuple(c["y"])) for h, c in meta["calibration"].items()}
        return model, dict(meta.get("objective") or {})
