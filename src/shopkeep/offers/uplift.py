"""Per-action purchase propensity and contribution, learned from randomized exposure logs.

For each action ``a`` a logistic model gives P(buy the focal item | features, a) and a ridge linear
model gives the rest of the visit's contribution (substitute, complement, later visits: cannibalization,
halo and pull-forward as logged). ``no_action`` is fitted first (the propensity without intervention);
every other action is fitted with a ridge penalty toward it, and discount actions toward it *plus* the
log-odds lift that the prior elasticity implies (``|e| * ln(list / paid)``), so a rarely logged
discount falls back on the elasticity prior instead of on noise.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from shopkeep.errors import NotFittedError, ValidationError

__all__ = ["FEATURES", "LoggedExposure", "UpliftModel"]

#: The public features the model reads (the guardrail input whitelist must allow all of them).
FEATURES: tuple[str, ...] = ("loyalty_member", "deal_affinity", "engagement", "log_price", "offers_seen")
Arr = NDArray[np.float64]


class _Outcome(Protocol):
    @property
    def focal(self) -> bool: ...
    @property
    def contribution(self) -> int: ...
    @property
    def focal_contribution(self) -> int: ...


class LoggedExposure(Protocol):
    """What the learner reads from one logged exposure (e.g. ``shopkeep.simulate.pricing.Exposure``)."""

    @property
    def features(self) -> Mapping[str, float]: ...
    @property
    def action(self) -> str: ...
    @property
    def propensity(self) -> float: ...
    @property
    def outcome(self) -> _Outcome: ...
    @property
    def later_contribution(self) -> int: ...


def _x(features: Mapping[str, float]) -> Arr:
    try:
        return np.array([1.0, *(float(features[f]) for f in FEATURES)])
    except KeyError as exc:
        raise ValidationError("features", sorted(features), f"missing {exc.args[0]!r}") from None


def _logistic(x: Arr, y: Arr, w: Arr, prior: Arr, lam: float, iters: int = 25) -> Arr:
    """Weighted logistic regression by Newton steps with a ridge penalty toward ``prior``."""
    theta = prior.copy()
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(x @ theta)))
        grad = x.T @ (w * (y - p)) - lam * (theta - prior)
        hess = (x * (w * p * (1 - p))[:, None]).T @ x + lam * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        theta = theta + step
        if float(np.max(np.abs(step))) < 1e-7:
            break
    return theta


@dataclass(frozen=True, slots=True)
class _ActionFit:
    logit: Arr
    other: Arr
    n: int


class UpliftModel:
    """Propensity and uplift per action. ``discounts`` maps an action to its paid/list ratio."""

    def __init__(self, *, prior_elasticity: float = -2.5, prior_strength: float = 30.0, ridge: float = 1.0,
                 discounts: Mapping[str, float] | None = None) -> None:
        self.prior_elasticity = prior_elasticity
        self.prior_strength = prior_strength
        self.ridge = ridge
        self.discounts = dict(discounts or {})

    def fit(self, logs: Sequence[LoggedExposure]) -> UpliftModel:
        """Fit on randomized exposures (inverse-propensity weighted, normalised per action)."""
        if not logs:
            raise ValidationError("logs", 0, "no logged exposures to learn from")
        if self.prior_elasticity >= 0:
            raise ValidationError("prior_elasticity", self.prior_elasticity, "must be negative")
        by_action: dict[str, list[LoggedExposure]] = {}
        for e in logs:
            if not 0 < e.propensity <= 1:
                raise ValidationError("propensity", e.propensity, "must be in (0, 1]")
            by_action.setdefault(e.action, []).append(e)
        if "no_action" not in by_action:
            raise ValidationError("logs", sorted(by_action), "need logged no_action exposures (the control)")
        fits: dict[str, _ActionFit] = {}
        control = self._fit_one(by_action["no_action"], None, 0.0)
        fits["no_action"] = control
        for action, rows in sorted(by_action.items()):
            if action != "no_action":
                ratio = self.discounts.get(action, 1.0)
                shift = -self.prior_elasticity * math.log(1.0 / ratio) if ratio < 1.0 else 0.0
                fits[action] = self._fit_one(rows, control, shift)
        self.fits_ = fits
        digest = hashlib.sha256()
        for a in sorted(fits):
            digest.update(a.encode() + fits[a].logit.tobytes() + fits[a].other.tobytes())
        self.version_ = f"uplift-{digest.hexdigest()[:12]}"
        return self

    def _fit_one(self, rows: Sequence[LoggedExposure], control: _ActionFit | None, shift: float) -> _ActionFit:
        x = np.stack([_x(e.features) for e in rows])
        w = np.array([1.0 / e.propensity for e in rows])
        w = w * (len(rows) / w.sum())
        y = np.array([1.0 if e.outcome.focal else 0.0 for e in rows])
        other = np.array([self._other(e) for e in rows])
        d = x.shape[1]
        prior = np.zeros(d) if control is None else control.logit.copy()
        prior[0] += shift
        lam = self.ridge if control is None else self.prior_strength
        logit = _logistic(x, y, w, prior, lam)
        o_prior = np.zeros(d) if control is None else control.other
        xtwx = (x * w[:, None]).T @ x + lam * np.eye(d)
        beta = np.linalg.solve(xtwx, (x * w[:, None]).T @ other + lam * o_prior)
        return _ActionFit(logit, beta, len(rows))

    @staticmethod
    def _other(e: LoggedExposure) -> float:
        """Contribution not earned by the focal unit itself: substitute, complement, later visits (cents)."""
        return float(e.outcome.contribution - e.outcome.focal_contribution + e.later_contribution)

    @property
    def actions(self) -> tuple[str, ...]:
        """Actions with a fitted model."""
        if not hasattr(self, "fits_"):
            raise NotFittedError("UpliftModel used before fit()")
        return tuple(sorted(self.fits_))

    def predict(self, features: Mapping[str, float], actions: Sequence[str]) -> tuple[Arr, Arr]:
        """(P(buy focal), expected other contribution in cents) for each action, for one visit."""
        if not hasattr(self, "fits_"):
            raise NotFittedError("UpliftModel used before fit()")
        x = _x(features)
        p = np.empty(len(actions))
        o = np.empty(len(actions))
        for i, a in enumerate(actions):
            f = self.fits_.get(a)
            if f is None:
                raise ValidationError("action", a, "has no logged exposures")
            p[i] = 1.0 / (1.0 + math.exp(-float(x @ f.logit)))
            o[i] = float(x @ f.other)
        return p, o
