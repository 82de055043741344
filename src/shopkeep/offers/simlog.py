"""The simulator's logging run written the production way: catalog items, decision records and events.

:func:`log_to_store` turns a randomized logging run of a :class:`~shopkeep.simulate.pricing.PriceWorld`
into what a live shop would have stored: the world's items in the catalog (list price, cost, category),
one decision record per exposure (randomized arm, its propensity, the features known at decision
time), and ``offer_shown`` / ``offer_accepted`` / ``purchase`` events (validated and appended to the
event log). The decision stack then learns through :func:`~shopkeep.offers.exposures.read_exposures`,
the same adapter production uses, and never sees the simulator's hidden parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from shopkeep.catalog import CatalogRepository
from shopkeep.events.schema import format_timestamp
from shopkeep.offers.audit import AUDIT_COLLECTION
from shopkeep.offers.exposures import exposure_record, write_events
from shopkeep.simulate.pricing import TREATMENTS, Exposure, PriceWorld
from shopkeep.storage.base import Store
from shopkeep.types import Item, Money

__all__ = ["SIM_EPOCH", "log_documents", "log_to_store", "world_items"]

#: Simulated visit ``v`` of shopper ``s`` happens at SIM_EPOCH + v days + s seconds.
SIM_EPOCH = datetime(2025, 1, 6, tzinfo=UTC)


def world_items(world: PriceWorld) -> list[Item]:
    """The world's items as catalog items (public facts only: price, cost, category)."""
    n_cat = len(world.config.category_sensitivity)
    return [Item(f"item-{i}", f"Simulated item {i}", category=(f"cat-{i % n_cat}",),
                 price=Money(int(world.price[i]), "USD"), cost=Money(int(world.cost[i]), "USD"))
            for i in range(world.config.n_items)]


def _events(world: PriceWorld, e: Exposure, offer_id: str, at: datetime) -> list[dict[str, Any]]:
    t = TREATMENTS[e.action]
    sid, who = f"{e.shopper_key}-v{e.visit}", e.shopper_key
    base = {"anonymous_id": who, "session_id": sid}
    item = f"item-{e.item}"
    price = int(world.price[e.item])

    def ts(seconds: int) -> str:
        return format_timestamp(at + timedelta(seconds=seconds))

    out: list[dict[str, Any]] = [{**base, "event_id": f"{offer_id}:shown", "type": "offer_shown",
                                  "timestamp": ts(0), "offer_id": offer_id, "item_id": item,
                                  "price": {"amount": t.paid(price), "currency": "USD"}}]
    o = e.outcome
    if o.focal and e.action != "no_action":
        out.append({**base, "event_id": f"{offer_id}:accepted", "type": "offer_accepted", "timestamp": ts(1),
                    "offer_id": offer_id, "item_id": item})
    buys: list[tuple[int, int]] = []
    if o.focal:
        buys.append((e.item, t.paid(price)))
    if o.substitute:
        s = int(world.substitute[e.item])
        buys.append((s, int(world.price[s])))
    if o.complement:
        k = int(world.complement[e.item])
        off = int(world.price[k]) * 15 // 100 if (t.bundle and o.focal) else 0
        buys.append((k, int(world.price[k]) - off))
    for n, (i, paid) in enumerate(buys):
        out.append({**base, "event_id": f"{offer_id}:buy:{i}", "type": "purchase", "timestamp": ts(2 + n),
                    "item_id": f"item-{i}", "order_id": f"ord-{offer_id}", "quantity": 1,
                    "price": {"amount": paid, "currency": "USD"}})
    return out


def log_documents(world: PriceWorld, logs: Sequence[Exposure]
                  ) -> tuple[list[Item], dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """(catalog items, decision records by id, wire-format events) of a logging run."""
    n_cat = len(world.config.category_sensitivity)
    records: dict[str, dict[str, Any]] = {}
    events: list[dict[str, Any]] = []
    for e in logs:
        offer_id = f"x-{e.shopper_key}-{e.visit}"
        shopper = int(e.shopper_key.rsplit("-", 1)[1])
        at = SIM_EPOCH + timedelta(days=e.visit, seconds=shopper)
        t = TREATMENTS[e.action]
        price = int(world.price[e.item])
        records[offer_id] = exposure_record(
            offer_id, e.shopper_key,
            {"item_id": f"item-{e.item}", "price": price, "cost": int(world.cost[e.item]),
             "category": f"cat-{e.item % n_cat}"},
            e.features, e.action, e.propensity, paid=t.paid(price), ship_cost=world.config.ship_cost_cents,
            ship_subsidy=t.free_shipping)
        events.extend(_events(world, e, offer_id, at))
    return world_items(world), records, events


def log_to_store(world: PriceWorld, logs: Sequence[Exposure], store: Store) -> int:
    """Write a logging run (catalog, decision records, events) into ``store``; returns events written."""
    items, records, events = log_documents(world, logs)
    CatalogRepository(store).upsert_many(items)
    ids = list(records)
    for start in range(0, len(ids), 1000):
        store.put_many(AUDIT_COLLECTION, {k: records[k] for k in ids[start:start + 1000]})
    for start in range(0, len(events), 5000):
        write_events(store, events[start:start + 5000])
    return len(events)
