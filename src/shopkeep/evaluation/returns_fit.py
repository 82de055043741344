"""Returns-aware fit on the synthetic store: size-driven returns at the usual size vs the suggested size.

Protocol: generate a store (apparel and footwear); fit :class:`~shopkeep.features.fit.FitModel` on
the purchases and returns *before* the cut-off (``train_frac`` of the days; shoppers' stated usual
sizes are known, as zero-party data). For every later purchase of a sized product, score the
ground-truth probability that it comes back too small or too large
(:func:`shopkeep.simulate.fit.size_return_probability`) for three choices of variant in that product:
the shopper's usual size (what the simulator bought), the size the model suggests, and the oracle
(the variant with the lowest true probability). The figure is the relative drop, fit vs usual.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np

from shopkeep.features.fit import FitModel
from shopkeep.simulate import StoreConfig, SyntheticStore, generate_store
from shopkeep.simulate import taxonomy as tx
from shopkeep.simulate.fit import is_sized, size_return_probability, usual_size
from shopkeep.simulate.shoppers import Shopper
from shopkeep.types import Event, EventType

__all__ = ["FitEvaluation", "FitRow", "choose_step", "evaluate_fit", "fit_store"]

_DEPTS = ("apparel", "footwear")


@dataclass(frozen=True)
class FitRow:
    """Mean true size-return probability per purchase under each choice, for one department (or ``all``)."""

    department: str
    cases: int
    usual: float
    fit: float
    oracle: float
    changed: int
    helped: int
    hurt: int

    @property
    def drop(self) -> float:
        """Relative drop of size-driven returns, fit vs usual (0 when usual has none)."""
        return 1.0 - self.fit / self.usual if self.usual > 0 else 0.0


@dataclass(frozen=True)
class FitEvaluation:
    """The rows (per department, then ``all``), the settings and the training size."""

    rows: tuple[FitRow, ...]
    step_at: float
    seed: int
    train_purchases: int
    train_size_returns: int
    notes: dict[str, object] = field(default_factory=dict)

    def row(self, department: str) -> FitRow:
        """The row of ``department`` (``all`` for every case)."""
        return next(r for r in self.rows if r.department == department)


def fit_store(n_items: int = 2000, n_shoppers: int = 2000, n_days: int = 90, seed: int = 1) -> SyntheticStore:
    """The apparel + footwear store the evaluation runs on."""
    return generate_store(StoreConfig(n_items=n_items, n_shoppers=n_shoppers, n_days=n_days, seed=seed,
                                      departments=_DEPTS))


def _owners(store: SyntheticStore) -> dict[str, Shopper]:
    out: dict[str, Shopper] = {}
    for s in store.shoppers:
        for a in s.anonymous_ids:
            out[a] = s
        if s.user_id:
            out[s.user_id] = s
    return out


def _row_of(item_id: str) -> int:
    return int(item_id.split("-", 1)[1])


def _fitted(store: SyntheticStore, train: Sequence[Event], step_at: float) -> FitModel:
    model = FitModel(step_at=step_at).fit(train, {it.item_id: it for it in store.items})
    owners = _owners(store)
    for e in train:  # the shoppers' stated usual sizes, on the key the model files them under
        s = owners.get(e.user_id or e.anonymous_id or "")
        if e.type is EventType.PURCHASE and s is not None:
            key = model.shopper_key(e.user_id, e.anonymous_id)
            model.state_usual_size(key, s.apparel_size)
            model.state_usual_size(key, str(s.shoe_size))
    return model


def _group_rows(store: SyntheticStore) -> dict[int, np.ndarray]:
    group = store.catalog.group
    bounds = np.flatnonzero(np.r_[True, group[1:] != group[:-1], True])
    return {int(group[b]): np.arange(b, e) for b, e in itertools.pairwise(bounds)}


def evaluate_fit(store: SyntheticStore, *, step_at: float = 0.2, train_frac: float = 2 / 3) -> FitEvaluation:
    """Score usual vs suggested vs oracle sizes on the purchases after the cut-off (see the module docstring)."""
    cut = store.config.start + timedelta(days=store.config.n_days * train_frac)
    train = [e for e in store.events if e.timestamp < cut]
    model = _fitted(store, train, step_at)
    owners, groups, cat = _owners(store), _group_rows(store), store.catalog
    per: dict[str, list[tuple[float, float, float]]] = {d: [] for d in _DEPTS}
    for e in store.events:
        if e.type is not EventType.PURCHASE or e.timestamp < cut or e.item_id is None:
            continue
        s, i = owners.get(e.user_id or e.anonymous_id or ""), _row_of(e.item_id)
        if s is None or not is_sized(cat, i):
            continue
        rows = groups[int(cat.group[i])]
        sizes = cat.attrs["size"][rows]
        usual_row = int(rows[int(np.argmin(np.abs(sizes - usual_size(s, cat, i))))])
        advice = model.advise(model.shopper_key(e.user_id, e.anonymous_id), f"sku-{usual_row:07d}")
        fit_row = _row_of(advice.suggested_item_id) if advice and advice.suggested_item_id else usual_row
        probs = [size_return_probability(s, cat, int(r)) for r in rows]
        dept = tx.TYPES[int(cat.type_idx[i])].department
        per[dept].append((size_return_probability(s, cat, usual_row), size_return_probability(s, cat, fit_row),
                          min(probs)))
    out = [_row(d, per[d]) for d in _DEPTS] + [_row("all", per["apparel"] + per["footwear"])]
    n_ret = sum(1 for e in train if e.type is EventType.RETURN and e.reason is not None
                and e.reason.value in ("too_small", "too_large"))
    return FitEvaluation(tuple(out), step_at, store.config.seed,
                         sum(1 for e in train if e.type is EventType.PURCHASE), n_ret)


def _row(dept: str, cases: list[tuple[float, float, float]]) -> FitRow:
    if not cases:
        return FitRow(dept, 0, 0.0, 0.0, 0.0, 0, 0, 0)
    a = np.array(cases)
    diff = a[:, 1] - a[:, 0]
    return FitRow(dept, len(cases), float(a[:, 0].mean()), float(a[:, 1].mean()), float(a[:, 2].mean()),
                  int(np.count_nonzero(np.abs(diff) > 1e-12)), int(np.count_nonzero(diff < -1e-12)),
                  int(np.count_nonzero(diff > 1e-12)))


def choose_step(store: SyntheticStore, grid: Sequence[float] = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4)) -> float:
    """The ``step_at`` of ``grid`` with the fewest size-driven returns on ``store`` (a validation store)."""
    scores = {g: evaluate_fit(store, step_at=g).row("all").fit for g in grid}
    return min(scores, key=lambda g: (scores[g], g))
