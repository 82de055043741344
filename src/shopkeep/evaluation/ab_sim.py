"""The lift of 1:1: a simulated A/B test of personalized vs segment-based vs popularity slates.

On a seeded synthetic store, three recommenders are fit on every shopper's interaction history
(views, carts, purchases): ``personalized`` (item-kNN over the shopper's own recent items, ties
broken by popularity), ``segment`` (:class:`~shopkeep.models.segment_pop.SegmentPopularityRecommender`:
what is popular in the shopper's taste segment) and ``popularity`` (the same slate for everyone).
Every shopper is assigned to one arm by :func:`~shopkeep.evaluation.experiments.assign` and makes
``visits`` future visits; each visit shows the arm's top ``k`` (items already in the history are
left out for every arm). The shopper views position ``j`` with probability ``1 / log2(j + 2)`` and
buys a viewed item with the simulator's ground-truth probability
(:meth:`~shopkeep.simulate.SyntheticStore.purchase_probabilities`); purchases are Bernoulli draws.

Per shopper (the randomization unit): conversion = share of visits with a purchase, revenue per
visit (USD). The report has each arm's mean with a 95% CI, its difference from ``popularity``, the
CUPED-adjusted version (pre-period covariate: the shopper's simulated revenue before the test), a
sample-ratio check and a revenue guardrail. ``expected`` gives the ground-truth expected values of
every arm over *all* shoppers (no sampling noise): the lift the test is trying to measure.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from shopkeep.errors import ValidationError
from shopkeep.evaluation.experiments import (
    Exposure,
    ExposureLog,
    assign,
    check_guardrail,
    compare_arms,
    srm_check,
)
from shopkeep.models.base import Interactions, SequentialRecommender
from shopkeep.models.itemknn import ItemKNNRecommender
from shopkeep.models.popularity import PopularityRecommender
from shopkeep.models.segment_pop import SegmentPopularityRecommender
from shopkeep.simulate import StoreConfig, SyntheticStore, generate_store
from shopkeep.types import EventType

__all__ = ["ABSimConfig", "ABSimResult", "run_ab_sim"]

ARMS = ("personalized", "segment", "popularity")
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ABSimConfig:
    """Store size, slate length ``k``, visits per shopper, seed, and the experiment's name."""

    n_items: int = 2000
    n_shoppers: int = 3000
    n_days: int = 30
    k: int = 10
    visits: int = 4
    seed: int = 0
    experiment: str = "lift-of-1to1"

    def __post_init__(self) -> None:
        if not 1 <= self.k <= 100 or not 1 <= self.visits <= 100:
            raise ValidationError("k/visits", (self.k, self.visits), "must be within [1, 100]")


@dataclass(frozen=True)
class ABSimResult:
    """Everything the report prints (see :meth:`to_dict`)."""

    config: ABSimConfig
    metrics: list[dict[str, Any]]
    guardrails: list[dict[str, Any]]
    srm: dict[str, Any]
    expected: dict[str, dict[str, float]]
    exposures: dict[str, int]
    meta: dict[str, Any]
    pre_period: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able report (without the per-shopper ``pre_period`` covariate)."""
        return {"experiment": self.config.experiment, "config": asdict(self.config), "exposures": self.exposures,
                "srm": self.srm, "metrics": self.metrics, "guardrails": self.guardrails,
                "expected": self.expected, "meta": self.meta}


def _histories(store: SyntheticStore) -> tuple[list[npt.NDArray[np.int64]], F64]:
    """Each shopper's unique interacted items (rows) in time order, and pre-period revenue in USD."""
    seqs = store.interaction_sequences()
    hist, pre = [], np.zeros(len(store.shoppers))
    row_of = {s.shopper_id: i for i, s in enumerate(store.shoppers)}
    for e in store.events:
        if e.type == EventType.PURCHASE and e.item_id:
            s = store.shopper_by_id.get(e.user_id or e.anonymous_id or "")
            if s is not None:
                pre[row_of[s.shopper_id]] += store.catalog.price[store.item_index[e.item_id]] / 100.0
    for s in store.shoppers:
        items: dict[int, None] = {}
        for key in (s.user_id, *s.anonymous_ids):
            for item in seqs.get(key or "", []):
                items[store.item_index[item]] = None
        hist.append(np.array(list(items), dtype=np.int64))
    return hist, pre


def _slates(store: SyntheticStore, hist: list[npt.NDArray[np.int64]], k: int) -> dict[str, npt.NDArray[np.int64]]:
    """Top ``k`` rows per shopper and arm, history excluded."""
    train = Interactions(tuple(h for h in hist if h.size), n_items=store.catalog.n)
    pop = PopularityRecommender().fit(train)
    models: dict[str, SequentialRecommender] = {"personalized": ItemKNNRecommender().fit(train),
                                                "segment": SegmentPopularityRecommender().fit(train),
              "popularity": pop}
    pop_row = pop.score([np.zeros(0, dtype=np.int64)])[0].astype(np.float64)
    tie = pop_row / max(pop_row.max(), 1.0) * 1e-6
    out = {}
    for arm, model in models.items():
        slates = np.empty((len(hist), k), dtype=np.int64)
        for start in range(0, len(hist), 500):
            chunk = hist[start : start + 500]
            scores = model.score(chunk).astype(np.float64) + tie[None, :]
            for i, h in enumerate(chunk):
                scores[i, h] = -np.inf
            slates[start : start + len(chunk)] = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        out[arm] = slates
    return out


def _truth(store: SyntheticStore, slates: dict[str, npt.NDArray[np.int64]],
           exam: F64) -> dict[str, tuple[F64, F64]]:
    """Per arm: ``(P(view and buy) per shopper x position, price in USD per shopper x position)``."""
    out = {}
    ids = [f"sku-{i:07d}" for i in range(store.catalog.n)]
    for arm, rows in slates.items():
        p = np.stack([store.purchase_probabilities(s, [ids[int(r)] for r in rows[i]])
                      for i, s in enumerate(store.shoppers)])
        out[arm] = (p * exam[None, :], store.catalog.price[rows] / 100.0)
    return out


def run_ab_sim(config: ABSimConfig | None = None, progress: Callable[[str], None] | None = None) -> ABSimResult:
    """Run the simulated experiment and build its report (see module doc)."""
    config = config or ABSimConfig()
    t0 = time.perf_counter()
    say = progress or (lambda _msg: None)
    say("generating the store")
    store = generate_store(StoreConfig(n_items=config.n_items, n_shoppers=config.n_shoppers,
                                       n_days=config.n_days, seed=config.seed))
    hist, pre = _histories(store)
    say("fitting the three recommenders")
    exam = 1.0 / np.log2(np.arange(config.k) + 2)
    truth = _truth(store, _slates(store, hist, config.k), exam)
    unit_ids = [s.shopper_id for s in store.shoppers]
    arm_of = assign(unit_ids, config.experiment, list(ARMS))
    log = ExposureLog()
    now = datetime.now(UTC)
    log.log(Exposure(config.experiment, u, a, now) for u, a in zip(unit_ids, arm_of, strict=True))
    say("simulating visits")
    rng = np.random.default_rng([config.seed, 1])
    conv: dict[str, list[float]] = {a: [] for a in ARMS}
    rev: dict[str, list[float]] = {a: [] for a in ARMS}
    cov: dict[str, list[float]] = {a: [] for a in ARMS}
    for i, arm in enumerate(arm_of):
        p, price = truth[arm][0][i], truth[arm][1][i]
        bought = rng.random((config.visits, config.k)) < p[None, :]
        conv[arm].append(float(bought.any(axis=1).mean()))
        rev[arm].append(float((bought * price[None, :]).sum(axis=1).mean()))
        cov[arm].append(float(pre[i]))
    metrics: list[dict[str, Any]] = []
    guards: list[dict[str, Any]] = []
    for name, values in (("conversion", conv), ("revenue_per_visit", rev)):
        for cuped in (False, True):
            res = compare_arms(values, "popularity", name, covariate=cov if cuped else None)
            metrics.extend(asdict(r) for r in res)
            if name == "revenue_per_visit" and not cuped:
                base = next(r.mean for r in res if r.arm == "popularity")
                guards.extend(asdict(check_guardrail(r, base, 0.05)) for r in res if r.arm != "popularity")
    expected = {arm: {"conversion": float((1 - np.prod(1 - p, axis=1)).mean()),
                      "revenue_per_visit": float((p * price).sum(axis=1).mean())} for arm, (p, price) in truth.items()}
    meta = {"seconds": round(time.perf_counter() - t0, 2), "numpy": np.__version__,
            "python": platform.python_version(), "shoppers_with_history": int(sum(h.size > 0 for h in hist))}
    return ABSimResult(config, metrics, guards, asdict(srm_check(log.counts(config.experiment))), expected,
                       log.counts(config.experiment), meta,
                       {u: float(v) for u, v in zip(unit_ids, pre, strict=True)})
