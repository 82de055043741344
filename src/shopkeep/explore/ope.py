"""Off-policy estimators: the value of a target policy from logs of a different (stochastic) one.

Inputs are arrays over ``n`` logged decisions. ``logging_propensities[i]`` is the probability the
logging policy gave to the action it took; ``target_propensities[i]`` the probability the target
policy gives to that same action in the same context.

* :func:`ips` — inverse propensity scoring, ``mean(w r)`` with ``w = target / logging``; unbiased
  when the logging policy gives every action the target may take a positive probability.
* :func:`snips` — self-normalized IPS, ``sum(w r) / sum(w)``; slightly biased, much lower variance.
* :func:`doubly_robust` — ``mean(q_target + w (r - q_logged))`` with a reward model ``q``: unbiased
  if the propensities are right (whatever ``q``), and low-variance when ``q`` is good.
* :func:`slate_position_ips` — ranked lists. **Assumption** (item-position model): the reward of a
  slate is the sum of per-position rewards, and the reward at position ``j`` depends only on the
  context, the item at ``j`` and ``j`` itself, not on the other items shown. Then weighting each
  position's reward by ``P_target(item at j) / P_logging(item at j)`` (marginal propensities, as
  :class:`~shopkeep.explore.slates.SlatePolicy` logs them) is unbiased. It is biased when items
  compete for attention within a slate (cascade behaviour).

Every estimate carries a standard error (the delta method for SNIPS).

>>> import numpy as np
>>> r, p0, p1 = np.array([1.0, 0.0, 1.0, 0.0]), np.full(4, 0.5), np.array([1.0, 0.0, 1.0, 1.0])
>>> ips(r, p0, p1).value, snips(r, p0, p1).value
(1.0, 0.6666666666666666)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from shopkeep.errors import ValidationError

__all__ = ["Estimate", "doubly_robust", "ips", "slate_position_ips", "snips"]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Estimate:
    """An estimated policy value with its standard error over ``n`` logged decisions."""

    value: float
    stderr: float
    n: int

    def ci(self, z: float = 1.96) -> tuple[float, float]:
        """Normal-approximation confidence interval (``z = 1.96`` for 95%)."""
        return self.value - z * self.stderr, self.value + z * self.stderr


def _array(name: str, values: Any, shape: tuple[int, ...] | None = None) -> F64:
    x = np.asarray(values, dtype=np.float64)
    if shape is not None and x.shape != shape:
        raise ValidationError(name, x.shape, f"must have shape {shape}")
    if x.size == 0:
        raise ValidationError(name, 0, "needs at least one logged decision")
    if not np.all(np.isfinite(x)):
        raise ValidationError(name, "non-finite", "must be finite numbers")
    return x


def _weights(rewards: Any, logging: Any, target: Any) -> tuple[F64, F64]:
    r = _array("rewards", rewards)
    p0 = _array("logging_propensities", logging, r.shape)
    p1 = _array("target_propensities", target, r.shape)
    if np.any((p0 <= 0) | (p0 > 1)):
        raise ValidationError("logging_propensities", float(p0.min()), "must lie in (0, 1]")
    if np.any((p1 < 0) | (p1 > 1)):
        raise ValidationError("target_propensities", float(p1.min()), "must lie in [0, 1]")
    return r, p1 / p0


def _mean(terms: F64) -> Estimate:
    n = terms.shape[0]
    se = float(terms.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return Estimate(float(terms.mean()), se, n)


def ips(rewards: Any, logging_propensities: Any, target_propensities: Any) -> Estimate:
    """Inverse propensity scoring: ``mean(w r)``."""
    r, w = _weights(rewards, logging_propensities, target_propensities)
    return _mean(w * r)


def snips(rewards: Any, logging_propensities: Any, target_propensities: Any) -> Estimate:
    """Self-normalized IPS: ``sum(w r) / sum(w)`` (0 when every weight is 0)."""
    r, w = _weights(rewards, logging_propensities, target_propensities)
    total = float(w.sum())
    if total == 0:
        return Estimate(0.0, 0.0, r.shape[0])
    value = float((w * r).sum() / total)
    resid = w * (r - value) / w.mean()
    n = r.shape[0]
    return Estimate(value, float(resid.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"), n)


def doubly_robust(rewards: Any, logging_propensities: Any, target_propensities: Any,
                  model_logged: Any, model_target: Any) -> Estimate:
    """Doubly robust: ``mean(model_target + w (r - model_logged))``.

    ``model_logged[i]`` is the reward model's prediction for the logged action, ``model_target[i]``
    its expectation under the target policy, ``sum_a target(a | x_i) q(x_i, a)``.
    """
    r, w = _weights(rewards, logging_propensities, target_propensities)
    q_log = _array("model_logged", model_logged, r.shape)
    q_tgt = _array("model_target", model_target, r.shape)
    return _mean(q_tgt + w * (r - q_log))


def slate_position_ips(rewards: Any, logging_propensities: Any, target_propensities: Any) -> Estimate:
    """Position-based IPS for slates: arrays ``(n, k)``, one column per position (see module doc).

    The estimate is of the expected total slate reward (the sum over positions) per request.
    """
    r = _array("rewards", rewards)
    if r.ndim != 2:
        raise ValidationError("rewards", r.shape, "must be a 2-d array (requests, positions)")
    _, w = _weights(r, logging_propensities, target_propensities)
    return _mean((w * r).sum(axis=1))
