"""The synthetic store: configuration, generation entry point and exports.

>>> store = generate_store(StoreConfig(n_items=300, n_shoppers=40, n_days=5, seed=1))
>>> len(store.items), len(store.shoppers), store.events[0].timestamp <= store.events[-1].timestamp
(300, 40, True)
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import numpy as np

from shopkeep.errors import NotFoundError, ValidationError
from shopkeep.simulate.catalog import Brand, CatalogArrays, build_catalog
from shopkeep.simulate.items import build_items, event_to_wire, item_to_wire
from shopkeep.simulate.sessions import SessionSimulator
from shopkeep.simulate.shoppers import Shopper, build_shoppers, response_probabilities
from shopkeep.types import Event, EventType, Item, Money

__all__ = ["StoreConfig", "SyntheticStore", "generate_store"]

ALL_DEPARTMENTS = ("beauty", "apparel", "footwear", "grocery")


@dataclass(frozen=True)
class StoreConfig:
    """What to generate. ``activity`` is the mean number of sessions per shopper per day."""

    n_items: int = 3000
    n_shoppers: int = 2000
    n_days: int = 30
    seed: int = 42
    departments: tuple[str, ...] = ALL_DEPARTMENTS
    start: datetime = datetime(2026, 10, 1, tzinfo=UTC)
    activity: float = 0.12
    late_event_rate: float = 0.002

    def __post_init__(self) -> None:
        for name, lo, hi in (("n_items", 100, 5_000_000), ("n_shoppers", 1, 10_000_000), ("n_days", 1, 3650)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ValidationError(name, value, f"must be an integer in [{lo}, {hi}]")
        bad = [d for d in self.departments if d not in ALL_DEPARTMENTS]
        if bad or not self.departments:
            raise ValidationError("departments", self.departments, f"must be a non-empty subset of {ALL_DEPARTMENTS}")
        if self.start.tzinfo is None:
            raise ValidationError("start", self.start, "must be timezone-aware UTC")
        if not 0.0 < self.activity <= 10.0:
            raise ValidationError("activity", self.activity, "must be in (0, 10] sessions per day")
        if not 0.0 <= self.late_event_rate <= 1.0:
            raise ValidationError("late_event_rate", self.late_event_rate, "must be in [0, 1]")


class SyntheticStore:
    """A generated store: items, shoppers, time-ordered events, and the ground-truth price response."""

    def __init__(self, config: StoreConfig, catalog: CatalogArrays, shoppers: list[Shopper],
                 events: list[Event], arrival_ms: np.ndarray) -> None:
        self.config = config
        self.catalog = catalog
        self.shoppers: tuple[Shopper, ...] = tuple(shoppers)
        self.events: list[Event] = events
        self.arrival_ms = arrival_ms

    @property
    def brands(self) -> list[Brand]:
        """All brands, indexed as ``Shopper.brand_affinity``."""
        return self.catalog.brands

    @cached_property
    def items(self) -> list[Item]:
        """Every item as a :class:`~shopkeep.types.Item` (built on first use)."""
        return build_items(self.catalog)

    @cached_property
    def item_index(self) -> dict[str, int]:
        """item_id → row."""
        return {f"sku-{i:07d}": i for i in range(self.catalog.n)}

    @cached_property
    def shopper_by_id(self) -> dict[str, Shopper]:
        """shopper_id, user_id and every anonymous id → shopper."""
        out: dict[str, Shopper] = {}
        for s in self.shoppers:
            for key in (s.shopper_id, s.user_id, *s.anonymous_ids):
                if key is not None:
                    out[key] = s
        return out

    def _rows(self, items: Iterable[Item | str]) -> np.ndarray:
        rows = []
        for it in items:
            key = it.item_id if isinstance(it, Item) else it
            row = self.item_index.get(key)
            if row is None:
                raise NotFoundError(f"unknown item_id {key!r}", {"item_id": key})
            rows.append(row)
        return np.array(rows, dtype=np.int64)

    def purchase_probabilities(self, shopper: Shopper, items: Sequence[Item | str],
                               prices: Sequence[Money | int] | None = None) -> np.ndarray:
        """True P(purchase | the shopper views the item at that price) for each item (list price by default)."""
        rows = self._rows(items)
        if prices is None:
            cents = self.catalog.price[rows].astype(float)
        else:
            if len(prices) != len(rows):
                raise ValidationError("prices", len(prices), f"must have one price per item ({len(rows)})")
            cents = np.array([_cents(p) for p in prices], dtype=float)
        p_cart, p_buy = response_probabilities(shopper, self.catalog, rows, cents)
        return np.asarray(p_cart * p_buy)

    def purchase_probability(self, shopper: Shopper, item: Item | str, price: Money | int | None = None) -> float:
        """The batch call for one item: the ground-truth purchase probability at ``price``."""
        return float(self.purchase_probabilities(shopper, [item], None if price is None else [price])[0])

    def write_catalog_jsonl(self, path: str | Path) -> int:
        """Write one item per line (see :func:`~shopkeep.simulate.items.item_to_wire`); return the count."""
        return _write_lines(path, (item_to_wire(it) for it in self.items))

    def write_events_jsonl(self, path: str | Path, *, order: str = "arrival") -> int:
        """Write one event per line in ``order`` "arrival" (late events appear late) or "time"."""
        if order not in ("arrival", "time"):
            raise ValidationError("order", order, 'must be "arrival" or "time"')
        idx = (np.argsort(self.arrival_ms, kind="stable") if order == "arrival"
               else np.arange(len(self.events)))
        return _write_lines(path, (event_to_wire(self.events[int(k)]) for k in idx))

    def interaction_sequences(self, kinds: Sequence[str] = ("view", "add_to_cart", "purchase"),
                              *, unique: bool = True) -> dict[str, list[str]]:
        """Time-ordered item ids per user (anonymous ids linked by a login fold into the user).

        Events with no user and no linked anonymous id stay under their anonymous id. ``unique``
        keeps only the first interaction with each item, as in the seqrec benchmarks.
        """
        wanted = {EventType(k) for k in kinds}
        link = {e.anonymous_id: e.user_id for e in self.events if e.anonymous_id and e.user_id}
        out: dict[str, list[str]] = {}
        seen: dict[str, set[str]] = {}
        for e in self.events:
            if e.type not in wanted or e.item_id is None:
                continue
            key = e.user_id or link.get(e.anonymous_id or "") or e.anonymous_id
            if key is None:
                continue
            if unique:
                mine = seen.setdefault(key, set())
                if e.item_id in mine:
                    continue
                mine.add(e.item_id)
            out.setdefault(key, []).append(e.item_id)
        return out


def _cents(price: Money | int) -> int:
    if isinstance(price, Money):
        if price.currency != "USD":
            raise ValidationError("price.currency", price.currency, "the synthetic store prices in USD")
        return price.amount
    if isinstance(price, bool) or not isinstance(price, int) or price <= 0:
        raise ValidationError("price", price, "must be Money or a positive integer of cents")
    return price


def _write_lines(path: str | Path, rows: Iterable[dict[str, object]]) -> int:
    n = 0
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
            fh.write("\n")
            n += 1
    return n


def generate_store(config: StoreConfig | None = None) -> SyntheticStore:
    """Generate a store from ``config`` (defaults: 3,000 items, 2,000 shoppers, 30 days). Same seed, same store."""
    config = config or StoreConfig()
    rng = np.random.default_rng(config.seed)
    r = random.Random(config.seed)
    start_s = int(config.start.timestamp())
    departments = tuple(d for d in ALL_DEPARTMENTS if d in config.departments)
    catalog = build_catalog(rng, config.n_items, departments, start_s)
    shoppers = build_shoppers(rng, r, config.n_shoppers, catalog, departments, config.activity)
    sim = SessionSimulator(catalog, shoppers, n_days=config.n_days, start_ms=start_s * 1000, seed=config.seed,
                           late_rate=config.late_event_rate)
    events, arrival = sim.run()
    return SyntheticStore(config, catalog, shoppers, events, arrival)

