"""The lift of 1:1: a simulated A/B test of personalized vs segment-based vs popularity slates.

On a seeded synthetic store, three recommenders are fit on every shopper's interaction history
(views, carts, purchases): ``personalized`` (item-kNN over the shopper's own recent items, ties
broken by popularity), ``segment`` (:class:`~shopkeep.models.segment_pop.SegmentPopularityRecommender`:
what is popular in the shopper's taste segment) and ``popularity`` (the same slate for everyone).
Every shopper is assigned to one arm by :func:`~shopkeep.evaluation.experiments.assign` and makes
``visits`` future visits; each visit shows the arm's top ``k`` (items already in the history are
left out for every arm).

Click model (``click_model``):

* ``"mission"`` (default): each visit has a mission — a product type drawn from the shopper's
  ground-truth type weights, as the simulator's own sessions start — and the shopper's first click
  is an item of that type, drawn as the simulator draws it (popularity × P(cart)^1.2 × price pain).
  The slate is served after that click: the 1:1 arm sees it (its input is the history plus the
  click, as the Engine's session context), the segment and popularity arms do not (a segment slate
  is the same for every shopper of the segment, by definition). A shown item is viewed with
  probability ``exam(j) · interest``, ``exam(j) = 1 / log2(j + 2)`` and ``interest =
  mission_share · [its type is the mission] + (1 − mission_share) · w(type) / max w`` (the
  simulator keeps about 80% of a session's views on the entry type and its variants or complements).
  ``personal_session=False`` is the ablation: the 1:1 arm ignores the click, as the segment arm does.
* ``"intent_free"``: the model of the first version — no session, one slate per shopper, and every
  shown item is viewed with ``exam(j)`` whatever its type (a shoe shopper looks at a serum as
  readily as at a shoe, which the simulator's shoppers never do).

A viewed item is bought with the simulator's ground-truth probability
(:func:`~shopkeep.simulate.shoppers.response_probabilities`); purchases are Bernoulli draws.

Per shopper (the randomization unit): conversion = share of visits with a purchase, revenue per
visit (USD). The report has each arm's mean with a 95% CI, its difference from ``popularity``, the
CUPED-adjusted version (pre-period covariate: the shopper's simulated revenue before the test), a
sample-ratio check and a revenue guardrail. ``expected`` gives the ground-truth expected values of
every arm over *all* shoppers and visits (no sampling noise): the lift the test is trying to
measure; ``oracle`` the same for slates chosen with the ground truth (per shopper, per true
archetype, one for all), which bounds what each kind of targeting could earn.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
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
from shopkeep.simulate.shoppers import price_terms, response_probabilities
from shopkeep.types import EventType

__all__ = ["ABSimConfig", "ABSimResult", "run_ab_sim"]

ARMS = ("personalized", "segment", "popularity")
CLICK_MODELS = ("mission", "intent_free")
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


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
    click_model: str = "mission"
    mission_share: float = 0.8
    personal_session: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.k <= 100 or not 1 <= self.visits <= 100:
            raise ValidationError("k/visits", (self.k, self.visits), "must be within [1, 100]")
        if self.click_model not in CLICK_MODELS:
            raise ValidationError("click_model", self.click_model, f"must be one of {CLICK_MODELS}")
        if not 0.0 <= self.mission_share <= 1.0:
            raise ValidationError("mission_share", self.mission_share, "must be within [0, 1]")


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
    oracle: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able report (without the per-shopper ``pre_period`` covariate)."""
        return {"experiment": self.config.experiment, "config": asdict(self.config), "exposures": self.exposures,
                "srm": self.srm, "metrics": self.metrics, "guardrails": self.guardrails,
                "expected": self.expected, "oracle": self.oracle, "meta": self.meta}


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


def _buy_matrix(store: SyntheticStore) -> F64:
    """Ground-truth P(purchase | view) at list price, shoppers x items."""
    cat = store.catalog
    rows, price = np.arange(cat.n), cat.price.astype(np.float64)
    out = np.empty((len(store.shoppers), cat.n))
    for i, s in enumerate(store.shoppers):
        p_cart, p_buy = response_probabilities(s, cat, rows, price)
        out[i] = p_cart * p_buy
    return out


def _missions(store: SyntheticStore, visits: int, rng: np.random.Generator) -> tuple[I64, I64]:
    """Per shopper and visit: the mission type (drawn from the true type weights) and the first click
    (an item of that type drawn as the simulator draws it: popularity x P(cart)^1.2 x price pain)."""
    cat = store.catalog
    n_types = len(store.shoppers[0].type_weights)
    by_type = {t: np.flatnonzero(cat.type_idx == t) for t in range(n_types)}
    stocked = np.array([by_type[t].size > 0 for t in range(n_types)])
    missions = np.empty((len(store.shoppers), visits), dtype=np.int64)
    clicks = np.empty_like(missions)
    for i, s in enumerate(store.shoppers):
        w = s.type_weights * stocked
        missions[i] = rng.choice(n_types, size=visits, p=w / w.sum())
        for v, t in enumerate(missions[i].tolist()):
            idx = by_type[t]
            price = cat.price[idx].astype(np.float64)
            p_cart, _ = response_probabilities(s, cat, idx, price)
            wt = cat.pop[idx] * np.exp(1.2 * np.log(p_cart) - 0.3 * price_terms(s, cat, idx, price))
            clicks[i, v] = idx[rng.choice(idx.size, p=wt / wt.sum())]
    return missions, clicks


def _top(scores: F64, excluded: list[I64], k: int) -> I64:
    for r, ex in enumerate(excluded):
        scores[r, ex] = -np.inf
    return np.asarray(np.argsort(-scores, axis=1, kind="stable")[:, :k], dtype=np.int64)


def _slates(store: SyntheticStore, hist: list[I64], clicks: I64 | None, k: int,
            personal_session: bool = True) -> dict[str, I64]:
    """Top ``k`` rows per arm, shopper and visit (shape shoppers x visits x k); history and the visit's
    first click excluded for every arm; only the personalized arm's input includes the click (unless
    ``personal_session`` is False: the ablation that shows what the session is worth)."""
    n_items, n = store.catalog.n, len(hist)
    visits = 1 if clicks is None else clicks.shape[1]
    train = Interactions(tuple(h for h in hist if h.size), n_items=n_items)
    pop = PopularityRecommender().fit(train)
    models: dict[str, SequentialRecommender] = {"personalized": ItemKNNRecommender().fit(train),
                                                "segment": SegmentPopularityRecommender().fit(train),
                                                "popularity": pop}
    pop_row = pop.score([np.zeros(0, dtype=np.int64)])[0].astype(np.float64)
    tie = pop_row / max(pop_row.max(), 1.0) * 1e-6
    cases = [(i, v) for i in range(n) for v in range(visits)]
    out = {}
    for arm, model in models.items():
        session = clicks is not None and arm == "personalized" and personal_session
        slates = np.empty((n, visits, k), dtype=np.int64)
        for start in range(0, len(cases), 500):
            chunk = cases[start : start + 500]
            click = [np.zeros(0, np.int64) if clicks is None else clicks[i, v : v + 1] for i, v in chunk]
            inputs = [np.concatenate([hist[i], c]) if session else hist[i] for (i, _), c in zip(chunk, click,
                                                                                                 strict=True)]
            scores = model.score(inputs).astype(np.float64) + tie[None, :]
            top = _top(scores, [np.concatenate([hist[i], c]) for (i, _), c in zip(chunk, click, strict=True)], k)
            for (i, v), row in zip(chunk, top, strict=True):
                slates[i, v] = row
        out[arm] = slates
    return out


def _interest(store: SyntheticStore, missions: I64 | None, share: float) -> Callable[[I64], F64]:
    """``f(slates)`` -> P(the shopper looks at each slate item | it is examined), same shape as ``slates``."""
    if missions is None:
        return lambda slates: np.ones(slates.shape)
    tw = np.stack([s.type_weights for s in store.shoppers])
    tw = tw / tw.max(axis=1, keepdims=True)
    types = store.catalog.type_idx

    def interest(slates: I64) -> F64:
        t = types[slates]
        rows = np.arange(slates.shape[0])[:, None, None]
        return np.asarray(share * (t == missions[:, :, None]) + (1.0 - share) * tw[rows, t])

    return interest


def _oracle(buy: F64, price: F64, store: SyntheticStore, missions: I64 | None, share: float,
            hist: list[I64], k: int) -> dict[str, I64]:
    """Slates chosen with the ground truth (shoppers x visits x k): per shopper and visit, per true
    archetype (one slate for all its shoppers and visits), one slate for everyone."""
    n = buy.shape[0]
    visits = 1 if missions is None else missions.shape[1]
    types = store.catalog.type_idx
    tw = np.stack([s.type_weights for s in store.shoppers])
    base = buy * price[None, :] * ((1.0 - share) * (tw / tw.max(axis=1, keepdims=True))[:, types]
                                   if missions is not None else 1.0)
    worth = [base + (share * buy * price[None, :] * (types[None, :] == missions[:, v, None])
                     if missions is not None else 0.0) for v in range(visits)]
    one = np.stack([_top(w.copy(), hist, k) for w in worth], axis=1)
    mean: F64 = np.mean(np.stack(worth), axis=0)
    seg = np.array([s.segment for s in store.shoppers])
    by_seg = np.empty((n, k), dtype=np.int64)
    for g in np.unique(seg):
        rows = np.flatnonzero(seg == g)
        by_seg[rows] = _top(np.tile(mean[rows].mean(axis=0), (rows.size, 1)), [hist[i] for i in rows], k)
    everyone = _top(np.tile(mean.mean(axis=0), (n, 1)), hist, k)
    return {"one_to_one": one, "true_segment": np.repeat(by_seg[:, None], visits, axis=1),
            "one_for_all": np.repeat(everyone[:, None], visits, axis=1)}


def _expected(p: F64, price: F64) -> dict[str, float]:
    return {"conversion": float((1 - np.prod(1 - p, axis=-1)).mean()),
            "revenue_per_visit": float((p * price).sum(axis=-1).mean())}


def _outcomes(config: ABSimConfig, arm_of: list[str], truth: dict[str, tuple[F64, F64]],
              pre: F64) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, list[float]]]:
    """Per arm: each assigned shopper's conversion, revenue per visit and pre-period covariate (sampled)."""
    rng = np.random.default_rng([config.seed, 1])
    conv: dict[str, list[float]] = {a: [] for a in ARMS}
    rev: dict[str, list[float]] = {a: [] for a in ARMS}
    cov: dict[str, list[float]] = {a: [] for a in ARMS}
    for i, arm in enumerate(arm_of):
        p, price = truth[arm][0][i], truth[arm][1][i]
        if p.shape[0] == 1:  # one slate for every visit
            p, price = np.repeat(p, config.visits, axis=0), np.repeat(price, config.visits, axis=0)
        bought = rng.random(p.shape) < p
        conv[arm].append(float(bought.any(axis=1).mean()))
        rev[arm].append(float((bought * price).sum(axis=1).mean()))
        cov[arm].append(float(pre[i]))
    return conv, rev, cov


def _compare(conv: dict[str, list[float]], rev: dict[str, list[float]],
             cov: dict[str, list[float]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    metrics: list[dict[str, Any]] = []
    guards: list[dict[str, Any]] = []
    for name, values in (("conversion", conv), ("revenue_per_visit", rev)):
        for cuped in (False, True):
            res = compare_arms(values, "popularity", name, covariate=cov if cuped else None)
            metrics.extend(asdict(r) for r in res)
            if name == "revenue_per_visit" and not cuped:
                base = next(r.mean for r in res if r.arm == "popularity")
                guards.extend(asdict(check_guardrail(r, base, 0.05)) for r in res if r.arm != "popularity")
    return metrics, guards


def run_ab_sim(config: ABSimConfig | None = None, progress: Callable[[str], None] | None = None) -> ABSimResult:
    """Run the simulated experiment and build its report (see module doc)."""
    config = config or ABSimConfig()
    t0 = time.perf_counter()
    say = progress or (lambda _msg: None)
    say("generating the store")
    store = generate_store(StoreConfig(n_items=config.n_items, n_shoppers=config.n_shoppers,
                                       n_days=config.n_days, seed=config.seed))
    hist, pre = _histories(store)
    mission = config.click_model == "mission"
    missions, clicks = _missions(store, config.visits, np.random.default_rng([config.seed, 2])) if mission \
        else (None, None)
    say("fitting the three recommenders")
    exam = 1.0 / np.log2(np.arange(config.k) + 2)
    buy, price = _buy_matrix(store), store.catalog.price / 100.0
    interest = _interest(store, missions, config.mission_share)
    rows = np.arange(len(hist))[:, None, None]

    def value(slates: I64) -> tuple[F64, F64]:
        return buy[rows, slates] * interest(slates) * exam, price[slates]

    truth = {arm: value(s) for arm, s in _slates(store, hist, clicks, config.k, config.personal_session).items()}
    unit_ids = [s.shopper_id for s in store.shoppers]
    arm_of = assign(unit_ids, config.experiment, list(ARMS))
    log = ExposureLog()
    log.log(Exposure(config.experiment, u, a, datetime.now(UTC)) for u, a in zip(unit_ids, arm_of, strict=True))
    say("simulating visits")
    metrics, guards = _compare(*_outcomes(config, arm_of, truth, pre))
    oracle = {name: _expected(*value(s)) for name, s in
              _oracle(buy, price, store, missions, config.mission_share, hist, config.k).items()}
    meta = {"seconds": round(time.perf_counter() - t0, 2), "numpy": np.__version__,
            "python": platform.python_version(), "shoppers_with_history": int(sum(h.size > 0 for h in hist))}
    return ABSimResult(config, metrics, guards, asdict(srm_check(log.counts(config.experiment))),
                       {arm: _expected(*t) for arm, t in truth.items()}, log.counts(config.experiment), meta,
                       {u: float(v) for u, v in zip(unit_ids, pre, strict=True)}, oracle)
