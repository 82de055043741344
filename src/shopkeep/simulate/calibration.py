"""Calibration numbers of a generated store: popularity skew, funnel rates, returns, session lengths.

Run ``python -m shopkeep.simulate [--items N --shoppers N --days N --seed N]`` to print them.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from shopkeep.simulate import taxonomy as tx
from shopkeep.types import EventType

if TYPE_CHECKING:
    from shopkeep.simulate.store import SyntheticStore

__all__ = ["calibration_report", "gini"]


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts (0 = equal, → 1 = concentrated).

    >>> gini(np.array([1, 1, 1, 1])), round(gini(np.array([0, 0, 0, 4])), 2)
    (0.0, 0.75)
    """
    x = np.sort(np.asarray(counts, dtype=float))
    n = x.shape[0]
    if n == 0 or x.sum() == 0:
        return 0.0
    cum = np.cumsum(x)
    return float((n + 1 - 2 * (cum / cum[-1]).sum()) / n)


def _top_share(counts: np.ndarray, frac: float) -> float:
    k = max(1, round(counts.shape[0] * frac))
    return float(np.sort(counts)[::-1][:k].sum() / max(counts.sum(), 1))


def _percentiles(values: list[int]) -> dict[str, float]:
    arr = np.array(values or [0], dtype=float)
    return {"mean": round(float(arr.mean()), 2), "p50": float(np.percentile(arr, 50)),
            "p90": float(np.percentile(arr, 90)), "p99": float(np.percentile(arr, 99)), "max": float(arr.max())}


def _returns(store: SyntheticStore) -> tuple[dict[str, float], dict[str, int]]:
    cat = store.catalog
    dept_of = np.array([tx.TYPES[t].department for t in range(len(tx.TYPES))])[cat.type_idx]
    bought: Counter[str] = Counter()
    returned: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for e in store.events:
        if e.type in (EventType.PURCHASE, EventType.RETURN) and e.item_id:
            d = str(dept_of[int(e.item_id[4:])])
            if e.type == EventType.PURCHASE:
                bought[d] += 1
            else:
                returned[d] += 1
                reasons[e.reason.value if e.reason else "none"] += 1
    rates = {d: round(returned[d] / bought[d], 4) for d in sorted(bought) if bought[d]}
    return rates, dict(reasons)


def calibration_report(store: SyntheticStore) -> dict[str, Any]:
    """Measured behaviour of ``store`` (all rates are fractions in [0, 1])."""
    n = store.catalog.n
    views = np.zeros(n, dtype=np.int64)
    types: Counter[str] = Counter()
    per_session: Counter[str] = Counter()
    views_per_session: Counter[str] = Counter()
    sessions_with_purchase: set[str] = set()
    late = 0
    for k, e in enumerate(store.events):
        types[e.type.value] += 1
        if e.session_id:
            per_session[e.session_id] += 1
        if e.type == EventType.VIEW and e.item_id:
            views[int(e.item_id[4:])] += 1
            views_per_session[e.session_id or ""] += 1
        elif e.type == EventType.PURCHASE and e.session_id:
            sessions_with_purchase.add(e.session_id)
        if store.arrival_ms[k] - int(e.timestamp.timestamp() * 1000) > 3_600_000:
            late += 1
    rates, reasons = _returns(store)
    return {
        "seed": store.config.seed, "n_items": n, "n_shoppers": len(store.shoppers), "n_events": len(store.events),
        "n_sessions": len(per_session), "events_by_type": dict(sorted(types.items())),
        "popularity": {"top1pct_view_share": round(_top_share(views, 0.01), 4),
                       "top10pct_view_share": round(_top_share(views, 0.10), 4),
                       "gini_views": round(gini(views), 4),
                       "items_never_viewed": round(float((views == 0).mean()), 4)},
        "funnel": {"view_to_cart": round(types["add_to_cart"] / max(types["view"], 1), 4),
                   "cart_to_purchase": round(types["purchase"] / max(types["add_to_cart"], 1), 4),
                   "session_conversion": round(len(sessions_with_purchase) / max(len(per_session), 1), 4)},
        "return_rate_by_department": rates, "return_reasons": dict(sorted(reasons.items())),
        "session_events": _percentiles(list(per_session.values())),
        "session_views": _percentiles(list(views_per_session.values())),
        "late_event_share": round(late / max(len(store.events), 1), 5),
        "segments": dict(sorted(Counter(s.segment for s in store.shoppers).items())),
    }
