"""The elasticity prior of the uplift model: fitted own-price elasticities per brand or category.

An :class:`ElasticityPrior` maps a group name (a brand, else a category) to its EB-shrunk own-price
elasticity from :class:`~shopkeep.offers.elasticity.DemandModel`. It is a versioned artifact without
pickle: canonical JSON whose version is a digest of its content, stored as a file or in a Store
collection. A lookup for a group it does not know falls back to the constant ``fallback`` and says so.

Two ways to fit one: :func:`prior_from_demand_model` (store-week scanner data such as Dominick's) and
:func:`prior_from_exposures` (randomized price exposures read from the event log: cells of group x
shopper cohort x price level, log conversion rate on log relative price, cohorts as the "stores").

>>> p = ElasticityPrior({"juice": -2.1}, source="example")
>>> p.lookup("juice"), p.lookup("unknown", "other")[0]
((-2.1, 'fitted: juice'), -2.5)
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from shopkeep.errors import NotFoundError, ValidationError
from shopkeep.offers.elasticity import DemandModel, OJPanel
from shopkeep.storage.base import DocumentStore

__all__ = ["PRIOR_COLLECTION", "ElasticityPrior", "prior_from_demand_model", "prior_from_exposures"]

PRIOR_COLLECTION = "offer_artifacts"
_LATEST = "elasticity_prior:latest"
#: Actions whose only difference from ``no_action`` is the price (no cue, subsidy or bundle).
PRICE_ONLY = frozenset({"no_action", "pct_10", "pct_20", "amount_off"})


@dataclass(frozen=True, slots=True)
class ElasticityPrior:
    """Own-price elasticity per group (brand or category), with a constant fallback."""

    elasticities: Mapping[str, float]
    source: str = ""
    ci: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    fallback: float = -2.5

    def __post_init__(self) -> None:
        bad = {g: e for g, e in self.elasticities.items() if not (math.isfinite(e) and e < 0)}
        if bad or self.fallback >= 0:
            raise ValidationError("elasticities", bad or self.fallback, "must be finite and negative")

    @property
    def version(self) -> str:
        """A digest of the content: the same prior always has the same version."""
        body = json.dumps(self._body(), sort_keys=True)
        return "elasticity-" + hashlib.sha256(body.encode()).hexdigest()[:12]

    def lookup(self, *groups: str | None) -> tuple[float, str]:
        """(elasticity, reason) for the first known group among ``groups``, else the fallback."""
        for g in groups:
            if g and g in self.elasticities:
                return float(self.elasticities[g]), f"fitted: {g}"
        named = ", ".join(repr(g) for g in groups if g) or "no group"
        return self.fallback, f"fallback {self.fallback}: no fitted elasticity for {named}"

    def _body(self) -> dict[str, Any]:
        return {"elasticities": {k: round(float(v), 6) for k, v in sorted(self.elasticities.items())},
                "ci": {k: [round(float(a), 6), round(float(b), 6)] for k, (a, b) in sorted(self.ci.items())},
                "fallback": self.fallback, "source": self.source}

    def to_dict(self) -> dict[str, Any]:
        """The JSON artifact (with its version)."""
        return {**self._body(), "version": self.version, "kind": "elasticity_prior"}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ElasticityPrior:
        """Inverse of :meth:`to_dict`; a changed body (version mismatch) is refused."""
        if doc.get("kind") != "elasticity_prior":
            raise ValidationError("kind", doc.get("kind"), "is not an elasticity_prior artifact")
        prior = cls({str(k): float(v) for k, v in doc["elasticities"].items()}, str(doc.get("source", "")),
                    {str(k): (float(a), float(b)) for k, (a, b) in doc.get("ci", {}).items()},
                    float(doc.get("fallback", -2.5)))
        if doc.get("version") not in (None, prior.version):
            raise ValidationError("version", doc.get("version"), f"does not match the content ({prior.version})")
        return prior

    def save(self, path: str | Path) -> Path:
        """Write the JSON artifact to ``path``."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True))
        return out

    @classmethod
    def load(cls, path: str | Path) -> ElasticityPrior:
        """Read a JSON artifact written by :meth:`save`."""
        p = Path(path)
        if not p.is_file():
            raise ValidationError("prior", str(path), "no such file")
        return cls.from_dict(json.loads(p.read_text()))

    def put(self, store: DocumentStore) -> str:
        """Store the artifact under its version and point ``latest`` at it; returns the version."""
        doc = self.to_dict()
        store.put_many(PRIOR_COLLECTION, {doc["version"]: doc, _LATEST: {"version": doc["version"]}})
        return str(doc["version"])

    @classmethod
    def latest(cls, store: DocumentStore) -> ElasticityPrior:
        """The most recently stored prior, or NotFoundError."""
        ptr = store.get_many(PRIOR_COLLECTION, [_LATEST]).get(_LATEST)
        if ptr is None:
            raise NotFoundError("no elasticity prior stored", {"collection": PRIOR_COLLECTION})
        doc = store.get_many(PRIOR_COLLECTION, [ptr["version"]]).get(ptr["version"])
        if doc is None:
            raise NotFoundError(f"elasticity prior {ptr['version']} is missing", {"version": ptr["version"]})
        return cls.from_dict(doc)


def prior_from_demand_model(model: DemandModel, names: Mapping[int, str] | None = None,
                            source: str = "scanner data") -> ElasticityPrior:
    """The EB-shrunk brand elasticities of a fitted demand model, keyed by brand name (or ``names``)."""
    names = names or {}
    els = {names.get(e.brand, e.name): min(e.shrunk, -1e-3) for e in model.elasticities_}
    ci = {names.get(e.brand, e.name): (e.ci_low, e.ci_high) for e in model.elasticities_}
    return ElasticityPrior(els, source, ci)


class _PriceExposure(Protocol):
    @property
    def shopper_key(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def group(self) -> str: ...
    @property
    def price_ratio(self) -> float: ...
    @property
    def outcome(self) -> Any: ...


def prior_from_exposures(logs: Sequence[_PriceExposure], *, cohorts: int = 10, step: float = 0.05,
                         min_cell: int = 10, source: str = "randomized exposures") -> ElasticityPrior:
    """Per-group elasticities from randomized price-only exposures (see the module docstring).

    Each cell (group, cohort = hash(shopper) mod ``cohorts``, price ratio rounded to ``step``) with at
    least ``min_cell`` exposures gives one row: log((purchases + 0.5) / exposures) on log mean ratio.
    """
    cells: dict[tuple[str, int, int], list[float]] = {}
    for e in logs:
        if e.action not in PRICE_ONLY or not e.group:
            continue
        cohort = int(hashlib.sha256(e.shopper_key.encode()).hexdigest()[:8], 16) % cohorts
        key = (e.group, cohort, round(e.price_ratio / step))
        c = cells.setdefault(key, [0.0, 0.0, 0.0])
        c[0] += 1
        c[1] += 1.0 if e.outcome.focal else 0.0
        c[2] += math.log(max(e.price_ratio, 1e-6))
    rows = [(g, s, v) for (g, s, _), v in cells.items() if v[0] >= min_cell]
    groups = sorted({g for g, _, _ in rows})
    if not groups:
        raise ValidationError("logs", len(logs), "no price-only exposure cells to estimate elasticities from")
    col = {g: i for i, g in enumerate(groups)}
    log_prices = np.zeros((len(rows), len(groups)))
    for r, (g, _, v) in enumerate(rows):
        log_prices[r, col[g]] = v[2] / v[0]
    panel = OJPanel(np.array([s for _, s, _ in rows], dtype=np.int64),
                    np.array([col[g] + 1 for g, _, _ in rows], dtype=np.int64),
                    np.zeros(len(rows), dtype=np.int64),
                    np.array([math.log((v[1] + 0.5) / v[0]) for _, _, v in rows]), log_prices,
                    np.zeros(len(rows)), np.zeros(len(rows)))
    model = DemandModel(min_store_obs=3).fit(panel)
    return prior_from_demand_model(model, {i + 1: g for i, g in enumerate(groups)}, source)
