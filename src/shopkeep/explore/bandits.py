"""Linear contextual bandits (disjoint arms): LinUCB and linear Thompson sampling.

Each arm ``a`` (a string id: a strategy, an offer, an item for an exploration slot) keeps a ridge
regression of reward on the context vector: ``A_a = l2 I + sum x x^T``, ``b_a = sum r x``,
``theta_a = A_a^-1 b_a``. An arm never updated has the prior (``theta = 0``, covariance ``I / l2``),
so new arms are explored first by both rules.

* LinUCB scores ``x . theta_a + alpha sqrt(x^T A_a^-1 x)`` (Li et al., 2010).
* Thompson sampling scores ``x . theta~`` with ``theta~ ~ N(theta_a, v^2 A_a^-1)`` (Agrawal & Goyal, 2013).

``select`` is batch-first and returns the top ``k`` arms per context. With ``epsilon > 0`` a request
instead gets a uniformly random ordered choice of ``k`` arms with probability ``epsilon``, so every
logged propensity lies strictly in ``(0, 1)``; the propensity returned is the probability that the
arm is at its position. Randomness comes from :func:`~shopkeep.explore.seeding.request_rng`: the same
``request_id`` against the same model state gives the same choice. Thompson propensities are
Monte-Carlo estimates (``n_propensity_samples`` draws from the request's generator).

>>> import numpy as np
>>> bandit = LinUCB(alpha=0.5, epsilon=0.0).fit(n_features=2)
>>> x = np.array([[1.0, 0.0], [0.0, 1.0]] * 50)
>>> _ = bandit.update(x, ["a", "b"] * 50, [1.0, 1.0] * 50)
>>> bandit.select(np.array([[1.0, 0.0]]), ["a", "b"], k=1, request_ids=["r1"]).arms
(('a',),)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from shopkeep.errors import ValidationError
from shopkeep.explore.seeding import request_rng
from shopkeep.models.base import check_fitted
from shopkeep.models.registry import read_artifact, write_artifact

__all__ = ["BanditSelection", "LinUCB", "LinearThompson"]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class BanditSelection:
    """``arms[i]`` are the chosen arm ids for context ``i`` (best first), ``propensities[i][j]`` the
    probability of ``arms[i][j]`` at position ``j``, ``explored[i]`` whether the uniform branch fired."""

    arms: tuple[tuple[str, ...], ...]
    propensities: tuple[tuple[float, ...], ...]
    explored: tuple[bool, ...]


class _LinearBandit:
    """Shared state and bookkeeping of the disjoint linear bandits."""

    kind = "linear"

    def __init__(self, *, l2: float = 1.0, epsilon: float = 0.05, seed: int = 0) -> None:
        self.l2 = l2
        self.epsilon = epsilon
        self.seed = seed
        self.n_features_: int | None = None
        self.arm_ids_: list[str] = []
        self.a_inv_: F64 = np.zeros((0, 0, 0))
        self.b_: F64 = np.zeros((0, 0))
        self.counts_: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._row: dict[str, int] = {}

    # -- parameters and state -------------------------------------------------------------------
    def _check_params(self) -> None:
        if not self.l2 > 0:
            raise ValidationError("l2", self.l2, "must be > 0")
        if not 0.0 <= self.epsilon < 1.0:
            raise ValidationError("epsilon", self.epsilon, "must be within [0, 1)")

    def fit(self, n_features: int, arms: Sequence[str] = ()) -> Self:
        """Start from the prior with ``n_features`` context features and the given arms; returns self."""
        self._check_params()
        if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
            raise ValidationError("n_features", n_features, "must be an integer >= 1")
        self.n_features_ = n_features
        self.arm_ids_, self._row = [], {}
        self.a_inv_ = np.zeros((0, n_features, n_features))
        self.b_ = np.zeros((0, n_features))
        self.counts_ = np.zeros(0, dtype=np.int64)
        self._ensure(arms)
        return self

    def _ensure(self, arms: Sequence[str]) -> npt.NDArray[np.int64]:
        """Rows of ``arms``; unknown arms are added with the prior."""
        d = self.n_features_ or 0
        new = [a for a in dict.fromkeys(arms) if a not in self._row]
        for a in new:
            if not isinstance(a, str) or not a:
                raise ValidationError("arms", a, "arm ids must be non-empty strings")
        if new:
            start = len(self.arm_ids_)
            self.arm_ids_.extend(new)
            self._row.update({a: start + i for i, a in enumerate(new)})
            prior = np.broadcast_to(np.eye(d) / self.l2, (len(new), d, d))
            self.a_inv_ = np.concatenate([self.a_inv_, prior])
            self.b_ = np.concatenate([self.b_, np.zeros((len(new), d))])
            self.counts_ = np.concatenate([self.counts_, np.zeros(len(new), dtype=np.int64)])
        return np.array([self._row[a] for a in arms], dtype=np.int64)

    def _contexts(self, contexts: Any, n: int | None = None) -> F64:
        check_fitted(self, "n_features_")
        x = np.asarray(contexts, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features_:
            raise ValidationError("contexts", x.shape, f"must be a 2-d array with {self.n_features_} columns")
        if n is not None and x.shape[0] != n:
            raise ValidationError("contexts", x.shape[0], f"must have one row per action ({n})")
        if not np.all(np.isfinite(x)):
            raise ValidationError("contexts", "non-finite", "must be finite numbers")
        return x

    def update(self, contexts: Any, actions: Sequence[str], rewards: Sequence[float] | F64) -> Self:
        """Fold observed ``(context, action, reward)`` triples into the arms' posteriors (Sherman-Morrison)."""
        r = np.asarray(rewards, dtype=np.float64)
        x = self._contexts(contexts, len(actions))
        if r.shape != (len(actions),) or not np.all(np.isfinite(r)):
            raise ValidationError("rewards", r.shape, f"must be {len(actions)} finite numbers")
        rows = self._ensure(list(actions))
        for i, row in enumerate(rows):
            ai = self.a_inv_[row]
            u = ai @ x[i]
            self.a_inv_[row] = ai - np.outer(u, u) / (1.0 + x[i] @ u)
        np.add.at(self.b_, rows, r[:, None] * x)
        np.add.at(self.counts_, rows, 1)
        return self

    def theta(self, arms: Sequence[str]) -> F64:
        """Posterior mean coefficients ``(len(arms), n_features)`` (the prior's zeros for unknown arms)."""
        check_fitted(self, "n_features_")
        d = self.n_features_ or 0
        out = np.zeros((len(arms), d))
        for j, a in enumerate(arms):
            row = self._row.get(a)
            if row is not None:
                out[j] = self.a_inv_[row] @ self.b_[row]
        return out

    def _cov(self, arms: Sequence[str]) -> F64:
        d = self.n_features_ or 0
        out = np.empty((len(arms), d, d))
        for j, a in enumerate(arms):
            row = self._row.get(a)
            out[j] = self.a_inv_[row] if row is not None else np.eye(d) / self.l2
        return out

    # -- choosing ------------------------------------------------------------------------------
    def _scores(self, x: F64, theta: F64, cov: F64, rng: np.random.Generator) -> F64:
        raise NotImplementedError

    def _bandit_marginals(self, x: F64, theta: F64, cov: F64, greedy: npt.NDArray[np.int64],
                          order: npt.NDArray[np.int64], rng: np.random.Generator) -> F64:
        """P(the bandit rule, without the epsilon branch, puts ``order[j]`` at position j)."""
        return np.asarray(greedy == order, dtype=np.float64)

    def select(self, contexts: Any, arms: Sequence[str], k: int = 1, *,
               request_ids: Sequence[str]) -> BanditSelection:
        """The top ``k`` of ``arms`` for each context, with per-position propensities (see module doc)."""
        x = self._contexts(contexts)
        if len(request_ids) != x.shape[0]:
            raise ValidationError("request_ids", len(request_ids), f"must have one id per context ({x.shape[0]})")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(arms):
            raise ValidationError("k", k, f"must be an integer in [1, {len(arms)}]")
        if len(set(arms)) != len(arms):
            raise ValidationError("arms", len(arms), "arm ids must be unique")
        theta, cov = self.theta(arms), self._cov(arms)
        m, eps = len(arms), self.epsilon
        uniform = 1.0 / m  # P(a given arm at a given position) under a uniform ordered choice
        chosen, props, explored = [], [], []
        for i, rid in enumerate(request_ids):
            rng = request_rng(self.seed, rid)
            xi = x[i : i + 1]
            greedy = np.argsort(-self._scores(xi, theta, cov, rng)[0], kind="stable")[:k]
            explore = bool(eps > 0 and rng.random() < eps)
            order = rng.permutation(m)[:k] if explore else greedy
            marg = self._bandit_marginals(xi, theta, cov, greedy, order, rng)
            chosen.append(tuple(arms[int(j)] for j in order))
            props.append(tuple(float((1 - eps) * p + eps * uniform) for p in marg))
            explored.append(explore)
        return BanditSelection(tuple(chosen), tuple(props), tuple(explored))

    # -- persistence ---------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Hyper-parameters (the constructor's keyword arguments)."""
        raise NotImplementedError

    def save(self, path: Path) -> None:
        """Write ``model.json`` + ``arrays.npz`` into the directory ``path`` (no pickle)."""
        check_fitted(self, "n_features_")
        write_artifact(Path(path), self.kind, self.get_config(),
                       {"a_inv": self.a_inv_, "b": self.b_, "counts": self.counts_},
                       {"n_features": self.n_features_, "arm_ids": self.arm_ids_})

    @classmethod
    def load(cls, path: Path) -> Self:
        """Read a bandit written by :meth:`save`."""
        doc, arrays = read_artifact(Path(path), cls.kind)
        bandit = cls(**doc["config"]).fit(int(doc["meta"]["n_features"]))
        bandit.arm_ids_ = [str(a) for a in doc["meta"]["arm_ids"]]
        bandit._row = {a: i for i, a in enumerate(bandit.arm_ids_)}
        bandit.a_inv_, bandit.b_ = arrays["a_inv"].astype(np.float64), arrays["b"].astype(np.float64)
        bandit.counts_ = arrays["counts"].astype(np.int64)
        return bandit


class LinUCB(_LinearBandit):
    """LinUCB with disjoint arms: ``alpha`` scales the confidence bonus."""

    kind = "linucb"

    def __init__(self, alpha: float = 1.0, *, l2: float = 1.0, epsilon: float = 0.05, seed: int = 0) -> None:
        super().__init__(l2=l2, epsilon=epsilon, seed=seed)
        self.alpha = alpha

    def _check_params(self) -> None:
        super()._check_params()
        if not self.alpha >= 0:
            raise ValidationError("alpha", self.alpha, "must be >= 0")

    def _scores(self, x: F64, theta: F64, cov: F64, rng: np.random.Generator) -> F64:
        width = np.sqrt(np.maximum(np.einsum("nd,mde,ne->nm", x, cov, x), 0.0))
        return np.asarray(x @ theta.T + self.alpha * width)

    def get_config(self) -> dict[str, Any]:
        """Hyper-parameters (the constructor's keyword arguments)."""
        return {"alpha": self.alpha, "l2": self.l2, "epsilon": self.epsilon, "seed": self.seed}


class LinearThompson(_LinearBandit):
    """Linear Thompson sampling with disjoint arms: ``v`` scales the posterior covariance."""

    kind = "linear_thompson"

    def __init__(self, v: float = 1.0, *, l2: float = 1.0, epsilon: float = 0.05, seed: int = 0,
                 n_propensity_samples: int = 200) -> None:
        super().__init__(l2=l2, epsilon=epsilon, seed=seed)
        self.v = v
        self.n_propensity_samples = n_propensity_samples

    def _check_params(self) -> None:
        super()._check_params()
        if not self.v > 0:
            raise ValidationError("v", self.v, "must be > 0")
        if self.n_propensity_samples < 1:
            raise ValidationError("n_propensity_samples", self.n_propensity_samples, "must be >= 1")

    def _draw(self, x: F64, theta: F64, cov: F64, rng: np.random.Generator, n: int) -> F64:
        """Sampled scores ``(n, m)`` of the arms for the single context ``x`` (1, d)."""
        var = np.maximum(np.einsum("d,mde,e->m", x[0], cov, x[0]), 0.0)
        mean = theta @ x[0]
        return np.asarray(mean[None, :] + self.v * np.sqrt(var)[None, :] * rng.standard_normal((n, theta.shape[0])))

    def _scores(self, x: F64, theta: F64, cov: F64, rng: np.random.Generator) -> F64:
        # For one context the sampled score x.theta~ is exactly N(x.theta, v^2 x^T A^-1 x).
        return self._draw(x, theta, cov, rng, 1)

    def _bandit_marginals(self, x: F64, theta: F64, cov: F64, greedy: npt.NDArray[np.int64],
                          order: npt.NDArray[np.int64], rng: np.random.Generator) -> F64:
        draws = self._draw(x, theta, cov, rng, self.n_propensity_samples)
        ranks = np.argsort(-draws, axis=1, kind="stable")[:, : order.size]
        hits = (ranks == order[None, :]).mean(axis=0)
        # A Monte-Carlo zero would claim the sampler cannot make the choice it just made.
        return np.asarray(np.maximum(hits, 1.0 / (self.n_propensity_samples + 1)))

    def get_config(self) -> dict[str, Any]:
        """Hyper-parameters (the constructor's keyword arguments)."""
        return {"v": self.v, "l2": self.l2, "epsilon": self.epsilon, "seed": self.seed,
                "n_propensity_samples": self.n_propensity_samples}
