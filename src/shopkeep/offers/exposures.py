"""Events -> exposures: the uplift model's training rows, read from the event log through the Store.

An exposure is one offer decision of the *randomized* arm that the shopper saw:

* its decision record (collection ``offer_decisions``, written by :class:`~shopkeep.offers.audit.AuditTrail`
  or by :func:`exposure_record`) holds what was known at decision time: the features, the item's list
  price, cost and group, the ship cost, the action, the arm and the logged propensity of that action;
* an ``offer_shown`` event (``offer_id`` = the decision id) says it was displayed; ``offer_accepted``
  says the shopper took it;
* ``purchase`` events give the outcome: purchases in the same session after the offer was shown are
  the visit's outcome (the offer's item = the focal purchase; others = substitutes, complements), and
  the shopper's purchases in later sessions within ``horizon_days`` are the later contribution
  (pull-forward). Contribution = (paid - unit cost) x quantity, minus the shipping subsidy of a
  free-shipping offer on the focal purchase; unit costs come from the catalog in the same Store.

:func:`write_events` validates events with the ingest schema and appends them to the ``events`` log
exactly as the Ingestor does for events that carry a ``session_id`` (partition = session id).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from shopkeep.catalog import CatalogRepository
from shopkeep.errors import ValidationError
from shopkeep.events.log import EVENTS_LOG
from shopkeep.events.schema import canonical_json, clean_event
from shopkeep.offers.audit import AUDIT_COLLECTION
from shopkeep.storage.base import AppendResult, LogRecord, Store

__all__ = ["EventExposure", "ExposureOutcome", "exposure_record", "read_exposures", "write_events"]

_DAY_MS = 86_400_000
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class ExposureOutcome:
    """What followed one exposure in its session (cents)."""

    focal: bool
    contribution: int
    focal_contribution: int
    incentive: int
    accepted: bool = False


@dataclass(frozen=True, slots=True)
class EventExposure:
    """One randomized exposure rebuilt from the Store (satisfies ``uplift.LoggedExposure``)."""

    offer_id: str
    shopper_key: str
    item_id: str
    ts_ms: int
    features: Mapping[str, float]
    action: str
    propensity: float
    outcome: ExposureOutcome
    later_contribution: int
    group: str
    price_ratio: float


def exposure_record(offer_id: str, shopper_key: str, item: Mapping[str, Any], features: Mapping[str, float],
                    action: str, propensity: float, *, paid: int, ship_cost: int, ship_subsidy: bool,
                    currency: str = "USD", arm: str = "randomized") -> dict[str, Any]:
    """A decision record of the randomized arm (the fields the adapter reads; same shape as the audit's).

    ``item`` holds ``item_id``, ``price`` and ``cost`` (cents) and optionally ``category``/``brand``.
    """
    if not 0 < propensity <= 1:
        raise ValidationError("propensity", propensity, "must be in (0, 1]")
    money = {"price": item["price"], "cost": item["cost"]}
    return {"decision_id": offer_id, "shopper_key": shopper_key, "action": action, "arm": arm,
            "propensity": propensity, "offer_price": {"amount": paid, "currency": currency},
            "ship_subsidy": ship_subsidy,
            "inputs": {"features": dict(features), "ship_cost": {"amount": ship_cost, "currency": currency},
                       "item": {"item_id": item["item_id"], "category": item.get("category", ""),
                                "brand": item.get("brand"),
                                **{k: {"amount": v, "currency": currency} for k, v in money.items()}}}}


def write_events(store: Store, raw_events: Sequence[Mapping[str, Any]]) -> AppendResult:
    """Validate wire-format events (each must carry ``session_id``) and append them to the event log."""
    records = []
    for n, raw in enumerate(raw_events, start=1):
        clean, ts = clean_event(raw, line=n)
        if "session_id" not in clean:
            raise ValidationError("session_id", None, "is required here (use the Ingestor to sessionize)", line=n)
        records.append(LogRecord(clean["event_id"], ts, canonical_json(clean), clean["session_id"]))
    return store.append(EVENTS_LOG, records)


def _scan(store: Store) -> tuple[list[tuple[str, int, dict[str, Any]]], list[tuple[str, int, dict[str, Any]]]]:
    """(offer events, purchases) as (session partition, ts_ms, payload), in log order."""
    offers: list[tuple[str, int, dict[str, Any]]] = []
    buys: list[tuple[str, int, dict[str, Any]]] = []
    after = 0
    while True:
        page = store.read(EVENTS_LOG, after_seq=after, k=5000)
        if not page:
            return offers, buys
        after = page[-1].seq
        for r in page:
            if b'"offer_' not in r.payload.encode() and b'"purchase"' not in r.payload.encode():
                continue
            ev = orjson.loads(r.payload)
            kind = ev["type"]
            session = str(ev.get("session_id") or r.partition or "")
            if kind == "purchase":
                buys.append((session, r.ts_ms, ev))
            elif kind in ("offer_shown", "offer_accepted"):
                offers.append((session, r.ts_ms, ev))


def _who(ev: Mapping[str, Any]) -> str:
    return str(ev.get("user_id") or ev.get("anonymous_id") or "")


def _records(store: Store, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), _CHUNK):
        out.update(store.get_many(AUDIT_COLLECTION, list(ids[start:start + _CHUNK])))
    return out


def _catalog_costs(store: Store) -> Callable[[str], tuple[int, int] | None]:
    repo = CatalogRepository(store)
    cache: dict[str, tuple[int, int] | None] = {}

    def lookup(item_id: str) -> tuple[int, int] | None:
        if item_id not in cache:
            it = repo.get_many([item_id]).get(item_id)
            ok = it is not None and it.cost is not None and it.price is not None
            cache[item_id] = (it.price.amount, it.cost.amount) if ok and it and it.price and it.cost else None
        return cache[item_id]

    return lookup


def read_exposures(store: Store, *, arm: str = "randomized", horizon_days: float = 30.0,
                   unit_cost: Callable[[str], tuple[int, int] | None] | None = None) -> list[EventExposure]:
    """Every shown exposure of ``arm`` with its outcome, in the order they were shown.

    ``unit_cost(item_id) -> (list price, unit cost)`` defaults to the catalog in ``store``; a purchase
    of an item with no known cost counts at zero margin (and is not an error: the catalog may lag).
    """
    offers, buys = _scan(store)
    shown = {ev["offer_id"]: (session, ts, ev) for session, ts, ev in offers if ev["type"] == "offer_shown"}
    accepted = {ev["offer_id"] for _, _, ev in offers if ev["type"] == "offer_accepted"}
    records = _records(store, sorted(shown))
    costs = unit_cost or _catalog_costs(store)
    by_session: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for session, ts, ev in buys:
        by_session.setdefault(session, []).append((ts, ev))
    every: list[EventExposure] = []
    for offer_id, (session, ts, _) in sorted(shown.items(), key=lambda kv: (kv[1][1], kv[0])):
        rec = records.get(offer_id)
        if rec is not None:
            every.append(_exposure(offer_id, ts, rec, by_session.get(session, []), costs, offer_id in accepted))
    # A session's contribution: its exposure's outcome (with any shipping subsidy), else its purchases.
    per_session: dict[str, tuple[int, str, int]] = {}
    for session, rows in by_session.items():
        per_session[session] = (rows[0][0], _who(rows[0][1]), sum(_margin(ev, costs) for _, ev in rows))
    for e in every:
        session = shown[e.offer_id][0]
        per_session[session] = (e.ts_ms, _who(shown[e.offer_id][2]), e.outcome.contribution)
    by_shopper: dict[str, list[tuple[int, str, int]]] = {}
    for session, (ts, who, contribution) in per_session.items():
        by_shopper.setdefault(who, []).append((ts, session, contribution))
    horizon = int(horizon_days * _DAY_MS)
    return [_with_later(e, by_shopper.get(_who(shown[e.offer_id][2]), []), horizon, shown[e.offer_id][0])
            for e in every if records[e.offer_id].get("arm") == arm]


def _margin(ev: Mapping[str, Any], costs: Callable[[str], tuple[int, int] | None]) -> int:
    known = costs(ev["item_id"])
    paid = int(ev["price"]["amount"]) if "price" in ev else (known[0] if known else 0)
    return (paid - known[1]) * int(ev["quantity"]) if known else 0


def _exposure(offer_id: str, ts: int, rec: Mapping[str, Any],
              purchases: Iterable[tuple[int, dict[str, Any]]], costs: Callable[[str], tuple[int, int] | None],
              accepted: bool) -> EventExposure:
    inputs = rec["inputs"]
    item = inputs["item"]
    item_id, price, cost = item["item_id"], int(item["price"]["amount"]), int(item["cost"]["amount"])
    ship = int(inputs["ship_cost"]["amount"]) if rec.get("ship_subsidy") else 0
    focal, contribution, own, incentive = False, 0, 0, 0
    for bts, buy in purchases:
        if bts < ts:
            continue
        qty = int(buy["quantity"])
        paid = int(buy["price"]["amount"]) if "price" in buy else price
        if buy["item_id"] == item_id and not focal:
            focal = True
            own = (paid - cost) * qty - ship
            contribution += own
            incentive += (price - paid) * qty + ship
            continue
        known = costs(buy["item_id"])
        if known:
            contribution += (paid - known[1]) * qty
            incentive += max(0, known[0] - paid) * qty
    paid_offer = int(rec.get("offer_price", {}).get("amount", price))
    return EventExposure(offer_id, str(rec["shopper_key"]), item_id, ts,
                         {k: float(v) for k, v in inputs["features"].items()}, str(rec["action"]),
                         float(rec["propensity"]), ExposureOutcome(focal, contribution, own, incentive, accepted), 0,
                         str(item.get("brand") or item.get("category") or ""), paid_offer / price if price else 1.0)


def _with_later(e: EventExposure, purchases: Sequence[tuple[int, str, int]], horizon: int,
                session: str) -> EventExposure:
    later = sum(m for ts, s, m in purchases if s != session and e.ts_ms < ts <= e.ts_ms + horizon)
    return EventExposure(e.offer_id, e.shopper_key, e.item_id, e.ts_ms, e.features, e.action, e.propensity,
                         e.outcome, later, e.group, e.price_ratio)
