"""Validate the off-policy estimators against the synthetic store's ground truth.

Setting (all seeded). A store is generated; ``n_arms`` items are drawn from its catalog and the
true purchase probability ``P[s, a]`` of every shopper for every arm comes from the simulator's
response model (:meth:`~shopkeep.simulate.SyntheticStore.purchase_probabilities`).

* **Single action** (ips, snips, dr). A context is a shopper drawn uniformly. The logging policy
  is personalization-blind: ``0.7 softmax(log popularity) + 0.3 uniform``, popularity being the arm's
  mean ``P`` over shoppers. The target policy is personalized: ``softmax(temperature * Pseg)``, where
  ``Pseg`` is the mean ``P`` of the shopper's segment. Reward = a Bernoulli purchase with ``P[s, a]``.
  True value = ``mean_s sum_a target(a|s) P[s, a]``. DR's reward model is the per (segment, arm)
  mean reward shrunk toward the arm's mean, cross-fitted on two halves of each dataset.
* **Slate** (slate). The logging policy is :class:`~shopkeep.explore.slates.SlatePolicy` over the
  popularity ranking (``pool_size`` arms, ``epsilon``); the target is the deterministic top ``k`` of
  the pool by ``Pseg``. A shown item at position ``j`` is bought with ``exam[j] * P[s, item]``,
  ``exam[j] = 1 / log2(j + 2)`` (the item-position model the estimator assumes). True value =
  ``mean_s sum_j exam[j] P[s, target_j(s)]``.

Each of ``n_datasets`` logged datasets of ``n_contexts`` decisions gives one estimate per estimator;
``bias = mean(estimate) - true`` and ``rmse = sqrt(mean((estimate - true)^2))``.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from shopkeep.errors import ValidationError
from shopkeep.explore.ope import doubly_robust, ips, slate_position_ips, snips
from shopkeep.explore.slates import SlatePolicy
from shopkeep.simulate import SEGMENTS, StoreConfig, generate_store

__all__ = ["EstimatorStats", "OPEValidation", "OPEWorld", "build_world", "validate_ope"]

F64 = npt.NDArray[np.float64]
ESTIMATORS = ("ips", "snips", "dr", "slate")


@dataclass(frozen=True, eq=False)
class OPEWorld:
    """Ground truth and the two policies: ``true_p[s, a]``, ``segment[s]``, ``logging[a]``, ``target[s, a]``."""

    true_p: F64
    segment: npt.NDArray[np.int64]
    logging: F64
    target: F64
    popularity_order: npt.NDArray[np.int64]
    target_slates: npt.NDArray[np.int64]
    exam: F64


@dataclass(frozen=True)
class EstimatorStats:
    """One estimator over the repeated datasets; ``relative_bias = bias / true value``."""

    mean: float
    bias: float
    relative_bias: float
    rmse: float


@dataclass(frozen=True)
class OPEValidation:
    """True values of the target policy and each estimator's statistics."""

    true_value: float
    true_slate_value: float
    estimators: dict[str, EstimatorStats]
    config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (what ``shopkeep explore validate-ope --json`` prints)."""
        return {"true_value": self.true_value, "true_slate_value": self.true_slate_value,
                "estimators": {k: vars(v) for k, v in self.estimators.items()}, "config": self.config}


def _softmax(x: F64) -> F64:
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return np.asarray(z / z.sum(axis=-1, keepdims=True))


def build_world(*, n_arms: int = 30, n_shoppers: int = 1000, k: int = 5, pool_size: int = 15,
                temperature: float = 150.0, seed: int = 0) -> OPEWorld:
    """Generate the store and the ground truth (see module doc)."""
    if not 2 <= k < pool_size <= n_arms:
        raise ValidationError("k/pool_size/n_arms", (k, pool_size, n_arms), "need 2 <= k < pool_size <= n_arms")
    store = generate_store(StoreConfig(n_items=max(200, 10 * n_arms), n_shoppers=n_shoppers, n_days=1, seed=seed))
    rng = np.random.default_rng(seed)
    arms = [f"sku-{i:07d}" for i in rng.choice(store.catalog.n, n_arms, replace=False)]
    true_p = np.stack([store.purchase_probabilities(s, arms) for s in store.shoppers])
    segment = np.array([SEGMENTS.index(s.segment) for s in store.shoppers], dtype=np.int64)
    seg_mean = np.zeros((len(SEGMENTS), n_arms))
    for g in np.unique(segment):
        seg_mean[g] = true_p[segment == g].mean(axis=0)
    pop = true_p.mean(axis=0)
    logging = 0.7 * _softmax(np.log(pop)) + 0.3 / n_arms
    target = _softmax(temperature * seg_mean[segment])
    order = np.argsort(-pop, kind="stable")
    pool = order[:pool_size]
    ranked_in_pool = np.argsort(-seg_mean[segment][:, pool], axis=1, kind="stable")[:, :k]
    return OPEWorld(true_p, segment, logging, target, order, pool[ranked_in_pool], 1.0 / np.log2(np.arange(k) + 2))


def _reward_model(seg: npt.NDArray[np.int64], act: npt.NDArray[np.int64], r: F64, n_arms: int,
                  shrink: float = 5.0) -> F64:
    """Per (segment, arm) mean reward shrunk toward the arm mean: a ``(n_segments, n_arms)`` table."""
    g = len(SEGMENTS)
    sums, counts = np.zeros((g, n_arms)), np.zeros((g, n_arms))
    np.add.at(sums, (seg, act), r)
    np.add.at(counts, (seg, act), 1.0)
    arm_mean = (sums.sum(axis=0) + r.mean()) / (counts.sum(axis=0) + 1.0)
    return np.asarray((sums + shrink * arm_mean) / (counts + shrink))


def _single_action(world: OPEWorld, n: int, rng: np.random.Generator) -> dict[str, float]:
    s = rng.integers(world.true_p.shape[0], size=n)
    cum = np.cumsum(world.logging)
    a = np.minimum(np.searchsorted(cum, rng.random(n) * cum[-1]), cum.size - 1)
    r = (rng.random(n) < world.true_p[s, a]).astype(np.float64)
    p0, p1 = world.logging[a], world.target[s, a]
    seg = world.segment[s]
    fold = np.arange(n) % 2 == 0
    q_log, q_tgt = np.empty(n), np.empty(n)
    for part in (fold, ~fold):  # cross-fitting: each half is scored by the model fit on the other half
        table = _reward_model(seg[~part], a[~part], r[~part], world.logging.size)
        q_log[part] = table[seg[part], a[part]]
        q_tgt[part] = (world.target[s[part]] * table[seg[part]]).sum(axis=1)
    return {"ips": ips(r, p0, p1).value, "snips": snips(r, p0, p1).value,
            "dr": doubly_robust(r, p0, p1, q_log, q_tgt).value}


def _slate(world: OPEWorld, policy: SlatePolicy, n: int, rng: np.random.Generator) -> float:
    k = world.exam.size
    ranked = [f"a{int(i)}" for i in world.popularity_order]
    pool_ids, marg = policy.marginals(ranked, k)
    pool = np.array([int(x[1:]) for x in pool_ids])
    s = rng.integers(world.true_p.shape[0], size=n)
    explored = rng.random(n) < policy.effective_epsilon(len(pool), 0)
    rows = np.tile(np.arange(k), (n, 1))
    rows[explored] = np.argsort(rng.random((int(explored.sum()), pool.size)), axis=1)[:, :k]
    items = pool[rows]
    r = (rng.random((n, k)) < world.exam[None, :] * world.true_p[s[:, None], items]).astype(np.float64)
    p0 = marg[rows, np.arange(k)[None, :]]
    p1 = (items == world.target_slates[s]).astype(np.float64)
    return slate_position_ips(r, p0, p1).value


def validate_ope(*, n_datasets: int = 500, n_contexts: int = 5000, n_arms: int = 30, n_shoppers: int = 1000,
                 epsilon: float = 0.3, seed: int = 0,
                 progress: Callable[[int, int], None] | None = None) -> OPEValidation:
    """Estimate the target policy's value on ``n_datasets`` logged datasets and compare to the truth."""
    if n_datasets < 2 or n_contexts < 10:
        raise ValidationError("n_datasets/n_contexts", (n_datasets, n_contexts), "need >= 2 datasets of >= 10")
    t0 = time.perf_counter()
    world = build_world(n_arms=n_arms, n_shoppers=n_shoppers, seed=seed)
    policy = SlatePolicy(epsilon=epsilon, pool_size=15, seed=seed)
    true_value = float((world.target * world.true_p).sum(axis=1).mean())
    rows = np.arange(world.true_p.shape[0])[:, None]
    true_slate = float((world.exam[None, :] * world.true_p[rows, world.target_slates]).sum(axis=1).mean())
    estimates: dict[str, list[float]] = {e: [] for e in ESTIMATORS}
    for d in range(n_datasets):
        rng = np.random.default_rng([seed, d])
        for name, value in _single_action(world, n_contexts, rng).items():
            estimates[name].append(value)
        estimates["slate"].append(_slate(world, policy, n_contexts, rng))
        if progress is not None:
            progress(d + 1, n_datasets)
    stats = {}
    for name, values in estimates.items():
        truth = true_slate if name == "slate" else true_value
        v = np.array(values)
        stats[name] = EstimatorStats(float(v.mean()), float(v.mean() - truth), float((v.mean() - truth) / truth),
                                     float(np.sqrt(np.mean((v - truth) ** 2))))
    config = {"n_datasets": n_datasets, "n_contexts": n_contexts, "n_arms": n_arms, "n_shoppers": n_shoppers,
              "epsilon": epsilon, "seed": seed, "logging_value": float((world.logging * world.true_p).sum(1).mean()),
              "seconds": round(time.perf_counter() - t0, 2), "numpy": np.__version__,
              "python": platform.python_version()}
    return OPEValidation(true_value, true_slate, stats, config)
