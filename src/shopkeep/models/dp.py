"""User-level differential privacy for popularity and co-visitation counts (calibrated noise).

Neighbouring datasets differ by one *user's* whole sequence. Each user's contribution is clipped
before counting, so the sensitivity is known:

* item counts: a user adds 1 to at most ``clip`` distinct items (chosen at random among theirs), so the
  L1 sensitivity is ``clip`` and the L2 sensitivity ``sqrt(clip)``. Noise is added to *every* item's
  count: Laplace with scale ``clip / epsilon`` (pure epsilon-DP) or Gaussian with the smallest sigma
  that gives (epsilon, delta)-DP by the analytic Gaussian mechanism (Balle & Wang, ICML 2018).
* co-visitation pairs: a user adds 1 to at most ``pair_clip`` distinct ordered pairs ``a -> b`` (b within
  ``window`` positions after a). The set of pairs is itself private, so pairs are released by Laplace
  partition selection: noise ``Lap(pair_clip / epsilon)`` on each pair seen at least once, released only
  above ``1 + (pair_clip / epsilon) * ln(pair_clip / (2 * delta))`` (a pair only one user has survives
  with probability at most ``delta / pair_clip``; Korolova et al., WWW 2009; Desfontaines et al. 2022).

:class:`DPItemKNNRecommender` spends ``epsilon / 2`` on the item counts (used to normalise) and
``epsilon / 2`` on the pairs (each with ``delta / 2``): the whole model is (epsilon, delta)-DP by basic
composition. Post-processing (clamping at 0, similarity, ranking) keeps the guarantee. The guarantee
is for one release: refitting on more data is another release and spends budget again.

>>> gaussian_sigma(1.0, 1e-5, 1.0) > 3.0  # the classical 4.84 bound is looser
True
>>> round(laplace_scale(4.0, 8), 3)
2.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from shopkeep.errors import ValidationError
from shopkeep.models.base import Interactions, ValidateFn
from shopkeep.models.itemknn import ItemKNNRecommender
from shopkeep.models.popularity import PopularityRecommender

__all__ = [
    "DPItemKNNRecommender",
    "DPPopularityRecommender",
    "clip_items",
    "gaussian_sigma",
    "laplace_scale",
    "noisy_item_counts",
    "noisy_pair_counts",
]

Mechanism = Literal["laplace", "gaussian"]
FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


def _check_budget(epsilon: float, delta: float) -> None:
    if not (isinstance(epsilon, int | float) and math.isfinite(epsilon) and epsilon > 0):
        raise ValidationError("epsilon", epsilon, "must be a finite number > 0")
    if not (isinstance(delta, int | float) and 0 <= delta < 1):
        raise ValidationError("delta", delta, "must be in [0, 1)")


def laplace_scale(epsilon: float, l1_sensitivity: float) -> float:
    """The Laplace scale ``b = sensitivity / epsilon`` giving epsilon-DP."""
    _check_budget(epsilon, 0.0)
    return float(l1_sensitivity) / epsilon


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def gaussian_sigma(epsilon: float, delta: float, l2_sensitivity: float) -> float:
    """The smallest sigma for which Gaussian noise gives (epsilon, delta)-DP (analytic Gaussian mechanism,
    by bisection on ``delta(sigma) = Phi(D/2s - e s/D) - exp(e) Phi(-D/2s - e s/D)``)."""
    _check_budget(epsilon, delta)
    if delta <= 0:
        raise ValidationError("delta", delta, "must be > 0 for the Gaussian mechanism")

    def delta_of(sigma: float) -> float:
        a, b = l2_sensitivity / (2 * sigma), epsilon * sigma / l2_sensitivity
        return _phi(a - b) - math.exp(epsilon) * _phi(-a - b)

    lo, hi = 1e-6 * l2_sensitivity, l2_sensitivity
    while delta_of(hi) > delta:
        hi *= 2.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if delta_of(mid) <= delta else (mid, hi)
    return hi


def clip_items(sequences: Sequence[IntArray], clip: int, rng: np.random.Generator) -> list[IntArray]:
    """Per user, at most ``clip`` distinct items (a random choice when they have more)."""
    if isinstance(clip, bool) or not isinstance(clip, int) or clip < 1:
        raise ValidationError("clip", clip, "must be an integer >= 1")
    out = []
    for seq in sequences:
        items = np.unique(np.asarray(seq, dtype=np.int64))
        out.append(rng.choice(items, size=clip, replace=False) if items.size > clip else items)
    return out


def noisy_item_counts(train: Interactions, *, epsilon: float, delta: float, clip: int, mechanism: Mechanism,
                      rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """User-clipped item counts plus calibrated noise on every item (see the module docstring)."""
    clipped = clip_items(train.sequences, clip, rng)
    flat = np.concatenate(clipped) if clipped else np.zeros(0, dtype=np.int64)
    counts = np.bincount(flat, minlength=train.n_items).astype(np.float64)
    if mechanism == "laplace":
        return counts + rng.laplace(0.0, laplace_scale(epsilon, clip), size=counts.size)
    if mechanism == "gaussian":
        return counts + rng.normal(0.0, gaussian_sigma(epsilon, delta, math.sqrt(clip)), size=counts.size)
    raise ValidationError("mechanism", mechanism, "must be 'laplace' or 'gaussian'")


def _user_pairs(seq: IntArray, window: int) -> npt.NDArray[np.int64]:
    """Distinct ordered pairs ``a -> b`` (a != b, b within ``window`` after a) as ``a * n + b`` codes' rows."""
    pairs = [np.stack([seq[:-d], seq[d:]], axis=1) for d in range(1, min(window, seq.size - 1) + 1)]
    if not pairs:
        return np.zeros((0, 2), dtype=np.int64)
    both = np.concatenate(pairs)
    both = both[both[:, 0] != both[:, 1]]
    return np.unique(both, axis=0)


def noisy_pair_counts(train: Interactions, *, epsilon: float, delta: float, pair_clip: int, window: int,
                      rng: np.random.Generator) -> sp.csr_matrix:
    """User-clipped ordered-pair counts, released by Laplace partition selection (module docstring)."""
    _check_budget(epsilon, delta)
    if delta <= 0:
        raise ValidationError("delta", delta, "must be > 0 (the set of released pairs is private too)")
    if isinstance(pair_clip, bool) or not isinstance(pair_clip, int) or pair_clip < 1:
        raise ValidationError("pair_clip", pair_clip, "must be an integer >= 1")
    n = train.n_items
    chunks = []
    for seq in train.sequences:
        pairs = _user_pairs(np.asarray(seq, dtype=np.int64), window)
        if pairs.shape[0] > pair_clip:
            pairs = pairs[rng.choice(pairs.shape[0], size=pair_clip, replace=False)]
        chunks.append(pairs)
    if not chunks or not sum(c.shape[0] for c in chunks):
        return sp.csr_matrix((n, n), dtype=np.float64)
    allp = np.concatenate(chunks)
    counts = sp.coo_matrix((np.ones(allp.shape[0]), (allp[:, 0], allp[:, 1])), shape=(n, n)).tocsr()
    counts.sum_duplicates()
    scale = laplace_scale(epsilon, pair_clip)
    threshold = 1.0 + scale * math.log(pair_clip / (2.0 * delta))
    noisy = counts.data + rng.laplace(0.0, scale, size=counts.data.size)
    keep = noisy > threshold
    coo = counts.tocoo()
    return sp.csr_matrix((noisy[keep], (coo.row[keep], coo.col[keep])), shape=(n, n))


def _check_mechanism(mechanism: str, delta: float) -> None:
    if mechanism not in ("laplace", "gaussian"):
        raise ValidationError("mechanism", mechanism, "must be 'laplace' or 'gaussian'")
    if mechanism == "gaussian" and delta <= 0:
        raise ValidationError("delta", delta, "must be > 0 for the Gaussian mechanism")


class DPPopularityRecommender(PopularityRecommender):
    """Popularity from user-clipped, noised item counts: (epsilon, delta)-DP per user (module docstring).

    ``score``/``save``/``load`` are :class:`PopularityRecommender`'s: the noisy counts are safe to publish.

    ``refit_on_validation``: the evaluation runner refits on train + validation; that refit is the
    model released (and the one whose epsilon counts).
    """

    name = "pop_dp"
    refit_on_validation = True

    def __init__(self, epsilon: float = 4.0, delta: float = 1e-6, clip: int = 10,
                 mechanism: Mechanism = "gaussian", seed: int = 0) -> None:
        self.epsilon = epsilon
        self.delta = delta
        self.clip = clip
        self.mechanism = mechanism
        self.seed = seed
        super().__init__()

    def fit(self, train: Interactions, validate: ValidateFn | None = None) -> Self:
        """Clip, count, add noise. ``validate`` is unused."""
        _check_budget(self.epsilon, self.delta)
        _check_mechanism(self.mechanism, self.delta)
        rng = np.random.default_rng(self.seed)
        self.counts_ = noisy_item_counts(train, epsilon=self.epsilon, delta=self.delta, clip=self.clip,
                                         mechanism=self.mechanism, rng=rng)
        return self

    def get_config(self) -> dict[str, Any]:
        """The constructor's keyword arguments."""
        return {"epsilon": self.epsilon, "delta": self.delta, "clip": self.clip, "mechanism": self.mechanism,
                "seed": self.seed}


class DPItemKNNRecommender(ItemKNNRecommender):
    """Item-kNN over noisy co-visitation pairs and noisy item counts: (epsilon, delta)-DP per user.

    Scoring is :class:`~shopkeep.models.itemknn.ItemKNNRecommender`'s; only the counts differ: released
    forward pairs (each user's at most ``pair_clip`` distinct pairs within ``window``; ``backward`` times
    the transpose added) normalised by noisy item counts clamped at 1.
    """

    name = "itemknn_dp"

    def __init__(self, epsilon: float = 4.0, delta: float = 1e-6, clip: int = 10, pair_clip: int = 20,
                 seed: int = 0, window: int = 5, backward: float = 0.5, alpha: float = 0.3,
                 history_len: int = 10, recency: float = 0.5) -> None:
        super().__init__(window=window, decay=1.0, backward=backward, alpha=alpha, history_len=history_len,
                         recency=recency)
        self.epsilon = epsilon
        self.delta = delta
        self.clip = clip
        self.pair_clip = pair_clip
        self.seed = seed

    def fit(self, train: Interactions, validate: ValidateFn | None = None) -> Self:
        """Half the budget on item counts (Gaussian), half on pairs (partition selection)."""
        self._check_params()
        _check_budget(self.epsilon, self.delta)
        rng = np.random.default_rng(self.seed)
        eps, delta = self.epsilon / 2, self.delta / 2
        pop = noisy_item_counts(train, epsilon=eps, delta=delta, clip=self.clip, mechanism="gaussian", rng=rng)
        forward = noisy_pair_counts(train, epsilon=eps, delta=delta, pair_clip=self.pair_clip, window=self.window,
                                    rng=rng)
        counts = sp.csr_matrix(forward + self.backward * forward.T)
        safe = np.maximum(pop, 1.0)
        left = sp.diags(safe ** -(1.0 - self.alpha))
        right = sp.diags(safe**-self.alpha)
        self.sim_ = sp.csr_matrix(left @ counts @ right, dtype=np.float32)
        clamped = np.maximum(pop, 0.0)
        self.pop_ = (1e-6 * clamped / max(clamped.max(), 1.0)).astype(np.float32)
        return self

    def get_config(self) -> dict[str, Any]:
        """The constructor's keyword arguments."""
        return {"epsilon": self.epsilon, "delta": self.delta, "clip": self.clip, "pair_clip": self.pair_clip,
                "seed": self.seed, "window": self.window, "backward": self.backward, "alpha": self.alpha,
                "history_len": self.history_len, "recency": self.recency}
