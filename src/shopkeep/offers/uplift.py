"""Per-action purchase propensity and contribution, learned from randomized exposure logs.

For each action ``a`` a logistic model gives P(buy the focal item | features, a) and a ridge linear
model gives the rest of the visit's contribution (substitute, complement, later visits: cannibalization,
halo and pull-forward as logged). ``no_action`` is fitted first (the propensity without intervention);
every other action is fitted with a ridge penalty toward it. A price change enters as a known offset
``s_g * ln(list / paid)`` on the log-odds, where ``s_g = -e_g / (1 - p0)`` turns the own-price
elasticity ``e_g`` of the item's group (brand, else category; from an :class:`ElasticityPrior`, else
the constant ``prior_elasticity``) into a log-odds slope at the control conversion rate ``p0``. So a
rarely logged discount falls back on the elasticity prior instead of on noise; the data learn the
deviation from it.

The fitted model is an artifact without pickle: :meth:`UpliftModel.to_dict` / :meth:`from_dict` (JSON).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from shopkeep.errors import NotFittedError, NotFoundError, ValidationError
from shopkeep.offers.priors import PRIOR_COLLECTION, ElasticityPrior
from shopkeep.storage.base import DocumentStore

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
    @property
    def group(self) -> str: ...
    @property
    def price_ratio(self) -> float: ...


def _x(features: Mapping[str, float]) -> Arr:
    try:
        return np.array([1.0, *(float(features[f]) for f in FEATURES)])
    except KeyError as exc:
        raise ValidationError("features", sorted(features), f"missing {exc.args[0]!r}") from None


def _logistic(x: Arr, y: Arr, w: Arr, prior: Arr, lam: float, offset: Arr, iters: int = 25) -> Arr:
    """Weighted logistic regression with a fixed ``offset``, by Newton steps, ridge toward ``prior``."""
    theta = prior.copy()
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(x @ theta + offset)))
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
    """Propensity and uplift per action, with an elasticity prior on price changes.

    ``prior`` gives fitted elasticities per group; ``prior_elasticity`` is the constant used for groups
    it does not know (or when there is no prior). ``discounts`` maps an action to its paid/list ratio
    for callers that do not pass ratios to :meth:`predict`.
    """

    def __init__(self, *, prior: ElasticityPrior | None = None, prior_elasticity: float = -2.5,
                 prior_strength: float = 30.0, ridge: float = 1.0,
                 discounts: Mapping[str, float] | None = None) -> None:
        self.prior = prior
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
        control_rows = by_action["no_action"]
        self.base_rate_ = float(np.mean([1.0 if e.outcome.focal else 0.0 for e in control_rows]))
        fits: dict[str, _ActionFit] = {"no_action": self._fit_one(control_rows, None)}
        for action, rows in sorted(by_action.items()):
            if action != "no_action":
                fits[action] = self._fit_one(rows, fits["no_action"])
        self.fits_ = fits
        digest = hashlib.sha256(f"{self.base_rate_!r}|{self.prior.version if self.prior else ''}".encode())
        for a in sorted(fits):
            digest.update(a.encode() + fits[a].logit.tobytes() + fits[a].other.tobytes())
        self.version_ = f"uplift-{digest.hexdigest()[:12]}"
        return self

    def slope(self, group: str = "") -> tuple[float, str]:
        """(log-odds slope per unit of ln(list/paid), reason) for an item of ``group``."""
        if self.prior is not None:
            e, why = self.prior.lookup(group)
            if why.startswith("fallback"):
                e, why = self.prior_elasticity, f"fallback {self.prior_elasticity}: no fitted elasticity for {group!r}"
        else:
            e, why = self.prior_elasticity, f"fallback {self.prior_elasticity}: no elasticity prior fitted"
        return -e / max(1.0 - getattr(self, "base_rate_", 0.0), 0.05), why

    @staticmethod
    def _offset(slope: float, ratio: float) -> float:
        return slope * math.log(1.0 / ratio) if 0 < ratio < 1.0 else 0.0

    def _fit_one(self, rows: Sequence[LoggedExposure], control: _ActionFit | None) -> _ActionFit:
        x = np.stack([_x(e.features) for e in rows])
        w = np.array([1.0 / e.propensity for e in rows])
        w = w * (len(rows) / w.sum())
        y = np.array([1.0 if e.outcome.focal else 0.0 for e in rows])
        other = np.array([self._other(e) for e in rows])
        slopes = {g: self.slope(g)[0] for g in {e.group for e in rows}}
        offset = np.array([self._offset(slopes[e.group], e.price_ratio) for e in rows])
        d = x.shape[1]
        prior = np.zeros(d) if control is None else control.logit.copy()
        lam = self.ridge if control is None else self.prior_strength
        logit = _logistic(x, y, w, prior, lam, offset)
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

    def predict(self, features: Mapping[str, float], actions: Sequence[str], *,
                ratios: Sequence[float] | None = None, group: str = "") -> tuple[Arr, Arr]:
        """(P(buy focal), expected other contribution in cents) for each action, for one visit.

        ``ratios`` are each action's paid/list price ratio (default: ``discounts``, else 1).
        """
        if not hasattr(self, "fits_"):
            raise NotFittedError("UpliftModel used before fit()")
        x = _x(features)
        slope = self.slope(group)[0]
        p = np.empty(len(actions))
        o = np.empty(len(actions))
        for i, a in enumerate(actions):
            f = self.fits_.get(a)
            if f is None:
                raise ValidationError("action", a, "has no logged exposures")
            ratio = ratios[i] if ratios is not None else self.discounts.get(a, 1.0)
            p[i] = 1.0 / (1.0 + math.exp(-(float(x @ f.logit) + self._offset(slope, ratio))))
            o[i] = float(x @ f.other)
        return p, o

    def to_dict(self) -> dict[str, Any]:
        """The fitted model as JSON (no pickle); :meth:`from_dict` restores the same predictions."""
        if not hasattr(self, "fits_"):
            raise NotFittedError("UpliftModel.to_dict before fit()")
        return {"kind": "uplift_model", "version": self.version_, "features": list(FEATURES),
                "prior": self.prior.to_dict() if self.prior else None, "prior_elasticity": self.prior_elasticity,
                "prior_strength": self.prior_strength, "ridge": self.ridge, "discounts": self.discounts,
                "base_rate": self.base_rate_,
                "fits": {a: {"logit": f.logit.tolist(), "other": f.other.tolist(), "n": f.n}
                         for a, f in sorted(self.fits_.items())}}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> UpliftModel:
        """Inverse of :meth:`to_dict`."""
        if doc.get("kind") != "uplift_model" or list(doc.get("features", [])) != list(FEATURES):
            raise ValidationError("kind", doc.get("kind"), f"is not an uplift_model over {list(FEATURES)}")
        prior = ElasticityPrior.from_dict(doc["prior"]) if doc.get("prior") else None
        m = cls(prior=prior, prior_elasticity=float(doc["prior_elasticity"]),
                prior_strength=float(doc["prior_strength"]), ridge=float(doc["ridge"]), discounts=doc["discounts"])
        m.base_rate_ = float(doc["base_rate"])
        m.fits_ = {a: _ActionFit(np.asarray(f["logit"], dtype=np.float64), np.asarray(f["other"], dtype=np.float64),
                                 int(f["n"])) for a, f in doc["fits"].items()}
        m.version_ = str(doc["version"])
        return m

    def put(self, store: DocumentStore) -> str:
        """Store the fitted model under its version and point ``uplift:latest`` at it; returns the version."""
        doc = self.to_dict()
        store.put_many(PRIOR_COLLECTION, {doc["version"]: doc, "uplift:latest": {"version": doc["version"]}})
        return str(doc["version"])

    @classmethod
    def latest(cls, store: DocumentStore) -> UpliftModel:
        """The most recently stored model (``shopkeep offers fit``), or NotFoundError."""
        ptr = store.get_many(PRIOR_COLLECTION, ["uplift:latest"]).get("uplift:latest")
        doc = store.get_many(PRIOR_COLLECTION, [ptr["version"]]).get(ptr["version"]) if ptr else None
        if doc is None:
            raise NotFoundError("no uplift model stored (run `shopkeep offers fit`)", {"collection": PRIOR_COLLECTION})
        return cls.from_dict(doc)
