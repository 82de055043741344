"""The web app's routes: the storefront and merchandiser console pages, and the read-only JSON the
pages need beyond the ``/v1`` API (``create_app`` mounts :func:`web_router`).

* ``GET /`` (storefront), ``GET /console`` (merchandiser console), ``GET /web/{file}`` (the static
  ES modules and the style sheet under ``serving/web``; a fixed list, no directory walking).
* ``GET /v1/web/catalog`` (scope read) — catalog listing with keyword ``q``, ``category``, ``brand``,
  ``attr=key=value`` (repeatable), ``max_price`` (minor units), ``in_stock``; ``ids`` keeps its order.
* ``GET /v1/web/facets`` — categories, brands and attribute values with counts.
* ``GET /v1/web/personas`` — synthetic shoppers: each a few seed items of one category and brand.
* ``GET /v1/web/whatif`` — the relevance / expected-margin / diversity trade-off of a margin weight.
* ``GET /v1/web/metrics`` — latency percentiles, events per second and click-through by source.

The what-if re-scores a fixed sample of product-page requests (seeded) with the live
:class:`~shopkeep.ranking.Ranker` under ``Objective(relevance=1, margin=w)`` and lets the live policy
(plus, for diversity > 0, an MMR novelty rule) choose each slate with ``policy.apply_policy``, over the
engine's own candidates and eligibility mask; it logs no slates, touches no pacing counter and
changes nothing the engine serves. The browse listing and facets obey the active policy's hard rules
for the shopper (see :func:`browse_mask`).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import FileResponse, Response

from shopkeep.catalog.schema import item_to_dict
from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.errors import NotFoundError, ValidationError
from shopkeep.events.log import EVENTS_LOG, read_slates
from shopkeep.features.context import Context, ContextRequest
from shopkeep.pipeline.engine import Engine
from shopkeep.policy import PolicySet, apply_policy, hard_checks, parse_policy
from shopkeep.ranking import Objective, Ranker
from shopkeep.serving.deps import EngineDep, require_scope

__all__ = ["WEB_DIR", "catalog_page", "click_through", "facets", "match_rows", "personas", "web_router",
           "whatif_curve", "whatif_point", "whatif_policy"]

#: The static files of the web app.
WEB_DIR = Path(__file__).resolve().parent / "web"
_PAGES = {"/": "index.html", "/console": "console.html"}
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml"}
#: Margin weights the what-if curve is drawn over.
WHATIF_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
_ANCHOR_SEED = 7
_METRICS_WINDOW = 5000
_WHATIF_RULE = "whatif-diversity"
#: Hard-rule kinds that shape recommendations but not the browsable catalog.
_BROWSE_IGNORES = ("inventory", "repurchase")


def _json(data: Any) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


_read_scope = require_scope("read")


def _bindings(engine: Engine) -> Any:
    # The engine's read bindings (snapshot, sources, policy, ranker) as one reference, read once.
    return engine._bindings


def _snapshot(engine: Engine) -> CatalogSnapshot:
    snap: CatalogSnapshot = _bindings(engine).snapshot
    return snap


# -- catalog ------------------------------------------------------------------------------------
def _card(snap: CatalogSnapshot, i: int, stock: np.ndarray) -> dict[str, Any]:
    """The fields a product card shows."""
    item = snap.items[i]
    wire = item_to_dict(item)
    return {"item_id": item.item_id, "title": item.title, "brand": item.brand, "category": list(item.category),
            "price": wire.get("price"), "rating": item.rating_avg, "rating_count": item.rating_count,
            "in_stock": bool(stock[i]), "attributes": wire.get("attributes", {}),
            "description": item.description[:400]}


def _parse_attrs(attrs: Sequence[str]) -> list[tuple[str, str]]:
    out = []
    for j, raw in enumerate(attrs):
        key, sep, value = raw.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValidationError(f"attr[{j}]", raw, "must be key=value")
        out.append((key.strip(), value.strip()))
    return out


def _text_scores(snap: CatalogSnapshot, rows: np.ndarray, q: str) -> np.ndarray:
    """Per row, how many of the query's words the item's title, brand or categories contain (0: not all)."""
    words = [w for w in re.split(r"\W+", q.lower()) if w]
    scores = np.zeros(len(rows), dtype=np.int64)
    for n, i in enumerate(rows.tolist()):
        item = snap.items[i]
        text = " ".join((item.title, item.brand or "", " ".join(item.category))).lower()
        hits = sum(1 for w in words if w in text)
        scores[n] = hits if hits == len(words) else 0
    return scores


def match_rows(snap: CatalogSnapshot, *, q: str = "", category: str = "", brand: str = "",
               attrs: Sequence[str] = (), max_price: int | None = None, in_stock: bool = False) -> np.ndarray:
    """Snapshot indices of active items matching every filter given, best first: keyword hits (when
    ``q``), then rating (ties: catalog order)."""
    mask = snap.active.copy()
    if category:
        mask &= snap.category_mask(category)
    if brand:
        code = snap.brands.index(brand) if brand in snap.brands else -2
        mask &= snap.brand == code
    for key, value in _parse_attrs(attrs):
        mask &= snap.attribute_mask(key, value)
    if max_price is not None:
        mask &= (snap.price_minor >= 0) & (snap.price_minor <= max_price)
    if in_stock:
        mask &= snap.in_stock()
    rows = np.flatnonzero(mask)
    rating = np.nan_to_num(snap.rating[rows].astype(np.float64), nan=0.0)
    if not q.strip():
        return rows[np.lexsort((rows, -rating))]
    hits = _text_scores(snap, rows, q)
    keep = hits > 0
    rows, rating, hits = rows[keep], rating[keep], hits[keep]
    return rows[np.lexsort((rows, -rating, -hits))]


def browse_mask(engine: Engine, user_id: str | None = None,
                anonymous_id: str | None = None) -> tuple[CatalogSnapshot, np.ndarray]:
    """The snapshot and the items the active policy lets this shopper browse: every hard rule
    (exclusions, regulated items, MAP hiding, stated avoids) except inventory and repurchase, which
    decide what is *recommended*; browsing still lists out-of-stock and bought items."""
    snap, stage = engine.read_view()
    policy = getattr(stage, "policy", None)
    profile = engine.profiles.get_many([user_id]).get(user_id) if user_id else None
    ctx = engine.features.context(ContextRequest(surface="search", user_id=user_id,
                                                 anonymous_id=anonymous_id or "web-browse"), profile)
    if not isinstance(policy, PolicySet):
        return snap, stage.eligibility(snap, ctx)
    mask = np.ones(snap.n, dtype=bool)
    for check in hard_checks(snap, ctx, policy):
        if check.kind not in _BROWSE_IGNORES:
            mask &= check.ok
    return snap, mask


def catalog_page(snap: CatalogSnapshot, *, ids: Sequence[str] = (), k: int = 24, offset: int = 0,
                 allowed: np.ndarray | None = None, **filters: Any) -> dict[str, Any]:
    """Matching items (see :func:`match_rows`; ``ids``: those of them, in the order given) as product
    cards, with ``total`` before paging; only rows ``allowed`` (default all) are listed."""
    if ids:
        ok = np.zeros(snap.n, dtype=bool)
        ok[match_rows(snap, **{**filters, "q": ""})] = True
        if allowed is not None:
            ok &= allowed
        rows = np.array([i for i in snap.indices(list(ids)).tolist() if i >= 0 and ok[i]], dtype=np.int64)
    else:
        rows = match_rows(snap, **filters)
        if allowed is not None:
            rows = rows[allowed[rows]]
    stock = snap.in_stock()
    page = rows[offset: offset + k]
    return {"items": [_card(snap, int(i), stock) for i in page], "total": len(rows), "offset": offset}


@dataclass
class _Cache:
    """Per-snapshot derived data (facets, personas) and the what-if's sampled requests."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    facets: tuple[tuple[int, str], dict[str, Any]] | None = None
    personas: tuple[int, list[dict[str, Any]]] | None = None
    whatif: tuple[tuple[int, ...], _Sample] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


def facets(snap: CatalogSnapshot, rows: np.ndarray | None = None, *, top: int = 12) -> dict[str, Any]:
    """Category (top two levels), brand and attribute-value counts over ``rows`` (default: active
    items); attribute keys with at least two values, most widely present first."""
    cats: Counter[str] = Counter()
    brands: Counter[str] = Counter()
    attrs: dict[str, Counter[str]] = {}
    present: Counter[str] = Counter()
    for i in (np.flatnonzero(snap.active) if rows is None else rows).tolist():
        item = snap.items[i]
        cats.update(item.category[:2])
        if item.brand:
            brands[item.brand] += 1
        present.update(item.attributes.keys())
        for key, value in item.attributes.items():
            for v in value if isinstance(value, tuple) else (value,):
                attrs.setdefault(key, Counter())[str(v).lower() if isinstance(v, bool) else str(v)] += 1
    keys = sorted((k for k in attrs if len(attrs[k]) > 1), key=lambda k: (-present[k], k))
    return {"categories": [{"name": n, "count": c} for n, c in cats.most_common(40)],
            "brands": [{"name": n, "count": c} for n, c in brands.most_common(40)],
            "attributes": {k: [{"value": v, "count": c} for v, c in attrs[k].most_common(top)] for k in keys}}


def personas(snap: CatalogSnapshot, *, n: int = 4, seeds: int = 3) -> list[dict[str, Any]]:
    """Synthetic shoppers: for each of the ``n`` largest top-level categories, its largest brand and
    that brand's ``seeds`` best-rated in-stock items there (what the persona has looked at)."""
    stock = snap.in_stock() & snap.active
    top: Counter[str] = Counter(path[0] for i, path in enumerate(snap.category_paths) if path and stock[i])
    out = []
    for category, _ in top.most_common(n):
        rows = np.flatnonzero(stock & snap.category_mask(category) & (snap.brand >= 0))
        if rows.size == 0:
            continue
        code = int(np.bincount(snap.brand[rows]).argmax())
        rows = rows[snap.brand[rows] == code]
        rating = np.nan_to_num(snap.rating[rows].astype(np.float64), nan=0.0)
        chosen = rows[np.lexsort((rows, -rating))][:seeds]
        slug = re.sub(r"[^a-z0-9]+", "-", f"{category}-{snap.brands[code]}".lower()).strip("-")
        out.append({"id": slug, "name": f"{snap.brands[code]} fan", "category": category,
                    "brand": snap.brands[code], "description": f"shops {category}, likes {snap.brands[code]}",
                    "seed_item_ids": [snap.item_ids[i] for i in chosen.tolist()]})
    return out


# -- what-if ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Sample:
    """Seeded product-page requests with their fused candidates (``retrieve_arrays``) and, per request,
    each candidate's model relevance and expected margin (they do not depend on the weights)."""

    contexts: list[Context]
    fused: list[Any]
    parts: list[dict[int, tuple[float, float]]]
    snapshot: CatalogSnapshot
    ranker: Ranker
    document: dict[str, Any]
    memo: dict[tuple[float, float, int], tuple[float, float, float]] = field(default_factory=dict)


def whatif_policy(document: Mapping[str, Any], diversity: float, k: int) -> PolicySet:
    """The active policy with, for ``diversity`` > 0, an MMR novelty rule over the top ``k`` whose
    λ = 1 / (1 + diversity) (the policy engine's own rule; diversity 0 adds nothing)."""
    rules = [r for r in document.get("rules", []) if r.get("id") != _WHATIF_RULE]
    if diversity > 0:
        rules.append({"id": _WHATIF_RULE, "kind": "novelty", "lambda": round(1.0 / (1.0 + diversity), 6),
                      "top_k": k})
    return parse_policy({**{k_: v for k_, v in document.items() if k_ not in ("version", "hash")}, "rules": rules})


def whatif_point(sample: _Sample, margin: float, diversity: float, k: int,
                 policy: PolicySet | None = None) -> tuple[float, float, float]:
    """Mean summed relevance, expected margin (minor units) and distinct brands of the top ``k`` when
    the live :class:`Ranker` scores with ``Objective(relevance=1, margin=margin)`` and the policy
    (plus the diversity rule) chooses the slate, over the sample. No pacing counter is read or written."""
    live = sample.ranker
    ranker = Ranker(Objective(relevance=1.0, margin=float(margin), conversion=live.objective.conversion),
                    live.model, live.return_cost_fraction)
    policy = policy or whatif_policy(sample.document, diversity, k)
    snap = sample.snapshot
    rel, money, brands = [], [], []
    for ctx, ranked, parts in zip(sample.contexts, ranker.rank_many(sample.contexts, sample.fused, snap),
                                  sample.parts, strict=True):
        chosen = [snap.index[it.item_id] for it in apply_policy(ctx, ranked, snap, policy, k=k).items]
        rel.append(sum(parts[i][0] for i in chosen if i in parts))
        money.append(sum(parts[i][1] for i in chosen if i in parts))
        brands.append(len({int(snap.brand[i]) for i in chosen}))
    return float(np.mean(rel)), float(np.mean(money)), float(np.mean(brands))


def whatif_curve(sample: _Sample, *, diversity: float = 0.0, k: int = 10, grid: Sequence[float] = WHATIF_GRID,
                 memo: dict[tuple[float, float, int], tuple[float, float, float]] | None = None,
                 ) -> list[dict[str, float]]:
    """Per margin weight in ``grid``: the sample's mean summed relevance of the served top ``k`` (as a
    fraction of weight 0's), mean expected margin per slate (minor units) and mean distinct brands.
    ``memo`` keeps points between calls over the same sample."""
    policy = whatif_policy(sample.document, diversity, k)
    memo = {} if memo is None else memo
    for w in grid:
        if (float(w), diversity, k) not in memo:
            memo[(float(w), diversity, k)] = whatif_point(sample, w, diversity, k, policy)
    rows = [(float(w), *memo[(float(w), diversity, k)]) for w in grid]
    base = min(rows, key=lambda r: r[0])[1] or 1.0
    return [{"margin_weight": w, "relevance": r / base, "expected_margin_minor": m, "distinct_brands": b}
            for w, r, m, b in rows]


def _whatif_sample(engine: Engine, cache: _Cache, n: int) -> _Sample:
    """``n`` product-page requests on seeded in-stock anchors, retrieved under the live policy
    (cached per catalog snapshot, policy and ranker)."""
    b = _bindings(engine)
    snap: CatalogSnapshot = b.snapshot
    key = (id(b.sources), id(b.policy), id(b.ranker), n)
    with cache.lock:
        if cache.whatif is not None and cache.whatif[0] == key:
            return cache.whatif[1]
    rows = np.flatnonzero(snap.active & snap.in_stock())
    anchors = np.random.default_rng(_ANCHOR_SEED).choice(rows, size=min(n, rows.size), replace=False)
    requests = [ContextRequest(surface="pdp", anonymous_id=f"whatif-{j}", item_id=snap.item_ids[i], k=10)
                for j, i in enumerate(anchors.tolist())]
    contexts = [engine.features.context(r) for r in requests]
    masks = [b.policy.eligibility(snap, c) for c in contexts]
    fused = b.sources.retriever("pdp").retrieve_arrays(contexts, masks, snap, k=engine.retrieval_k)
    base = Ranker(Objective(relevance=1.0), b.ranker.model, b.ranker.return_cost_fraction)
    parts = [{snap.index[s.item_id]: (float(s.relevance), float(s.expected_margin_minor)) for s in ranked}
             for ranked in base.rank_many(contexts, fused, snap)]
    sample = _Sample(contexts, list(fused), parts, snap, b.ranker, b.policy.to_dict())
    with cache.lock:
        cache.whatif = (key, sample)
    return sample


# -- metrics ------------------------------------------------------------------------------------
def _percentiles(registry: Any, route: str, qs: Sequence[float]) -> dict[str, float | None]:
    """Latency percentiles (ms) of ``route`` from the Prometheus histogram (linear within a bucket)."""
    buckets: dict[float, float] = {}
    for metric in registry.collect():
        for s in metric.samples:
            if s.name == "shopkeep_http_request_seconds_bucket" and s.labels.get("route") == route:
                le = float(s.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + s.value
    edges = sorted(buckets)
    total = buckets[edges[-1]] if edges else 0.0
    out: dict[str, float | None] = {}
    for q in qs:
        name = f"p{round(q * 100)}"
        if total <= 0:
            out[name] = None
            continue
        target, prev_edge, prev_count = q * total, 0.0, 0.0
        for edge in edges:
            count = buckets[edge]
            if count >= target:
                hi = edge if math.isfinite(edge) else prev_edge
                frac = (target - prev_count) / (count - prev_count) if count > prev_count else 1.0
                out[name] = round(1000 * (prev_edge + frac * (hi - prev_edge)), 3)
                break
            prev_edge, prev_count = edge, count
    return out


def _events_rate(registry: Any, state: dict[str, Any]) -> tuple[float, float]:
    """(events accepted in total, accepted per second since the previous call)."""
    total = registry.get_sample_value("shopkeep_events_total", {"outcome": "accepted"}) or 0.0
    now = time.monotonic()
    last = state.get("rate_at")
    rate = state.get("rate", 0.0)
    if last is not None and now - last[0] >= 0.5:
        rate = (total - last[1]) / (now - last[0])
    if last is None or now - last[0] >= 0.5:
        state["rate_at"], state["rate"] = (now, total), rate
    return total, float(rate)


def click_through(engine: Engine, state: dict[str, Any], *, window: int = _METRICS_WINDOW) -> dict[str, Any]:
    """Impressions and clicks (events that carry a trace_id) per retrieval source, from the newest
    ``window`` events, read incrementally; a slate item found by two sources counts for both."""
    store = engine.store
    if engine.slate_log is not None:
        engine.slate_log.flush()
    after = state.get("seq")
    if after is None:
        after = max(0, store.log_count(EVENTS_LOG) - window)
    shown: Counter[str] = state.setdefault("shown", Counter())
    clicked: Counter[str] = state.setdefault("clicked", Counter())
    while True:
        page = store.read(EVENTS_LOG, after_seq=after, k=window)
        joinable = [orjson.loads(r.payload) for r in page]
        joinable = [e for e in joinable if e.get("trace_id") and e.get("type") in ("impression", "click")]
        slates = read_slates(store, {e["trace_id"] for e in joinable})
        for e in joinable:
            slate = slates.get(e["trace_id"])
            if slate is None or e.get("item_id") not in slate.items:
                continue
            for source in slate.sources[slate.items.index(e["item_id"])].split("+"):
                (shown if e["type"] == "impression" else clicked)[source or "none"] += 1
        if page:
            after = page[-1].seq
        if len(page) < window:
            break
    state["seq"] = after
    return {s: {"impressions": shown[s], "clicks": clicked[s],
                "ctr": round(clicked[s] / shown[s], 4) if shown[s] else None} for s in sorted(shown | clicked)}


# -- routes -------------------------------------------------------------------------------------
def _static(name: str) -> Response:
    path = WEB_DIR / name
    if not path.is_file():
        raise NotFoundError(f"no web file {name!r}", {"file": name})
    return FileResponse(path, media_type=_TYPES.get(path.suffix, "application/octet-stream"),
                        headers={"Cache-Control": "no-cache"})


def _add_pages(router: APIRouter) -> None:
    files = {p.name for p in WEB_DIR.iterdir() if p.suffix in _TYPES} if WEB_DIR.is_dir() else set()

    def page(name: str) -> Callable[[], Response]:
        return lambda: _static(name)

    for route, name in _PAGES.items():
        router.add_api_route(route, page(name), methods=["GET"], include_in_schema=False)

    @router.get("/web/{name}", include_in_schema=False)
    def web_file(name: str) -> Response:
        if name not in files:
            raise NotFoundError(f"no web file {name!r}", {"file": name})
        return _static(name)


class _Filters:
    """The listing filters shared by ``/v1/web/catalog`` and ``/v1/web/facets``."""

    def __init__(self, q: Annotated[str, Query(max_length=200)] = "",
                 category: Annotated[str, Query(max_length=200)] = "",
                 brand: Annotated[str, Query(max_length=200)] = "",
                 attr: Annotated[list[str] | None, Query(max_length=20, description="key=value")] = None,
                 max_price: Annotated[int | None, Query(ge=0, description="minor units")] = None,
                 in_stock: bool = False) -> None:
        self.q, self.category, self.brand, self.attr = q, category, brand, attr or []
        self.max_price, self.in_stock = max_price, in_stock

    def kwargs(self) -> dict[str, Any]:
        return {"q": self.q, "category": self.category, "brand": self.brand, "attrs": self.attr,
                "max_price": self.max_price, "in_stock": self.in_stock}


def web_router() -> APIRouter:
    """The web app's pages, static files and ``/v1/web`` JSON routes (read scope)."""
    router = APIRouter()
    cache = _Cache()
    _add_pages(router)
    read = [Depends(_read_scope)]

    @router.get("/v1/web/catalog", dependencies=read, summary="Catalog listing with keyword and filters (web app)")
    def catalog(engine: EngineDep, filters: Annotated[_Filters, Depends()],
                ids: Annotated[str, Query(max_length=20_000, description="comma-separated item ids")] = "",
                k: Annotated[int, Query(ge=1, le=100)] = 24, offset: Annotated[int, Query(ge=0)] = 0,
                user_id: Annotated[str | None, Query(max_length=256)] = None,
                anonymous_id: Annotated[str | None, Query(max_length=256)] = None) -> Response:
        wanted = [p.strip() for p in ids.split(",") if p.strip()]
        snap, allowed = browse_mask(engine, user_id, anonymous_id)
        return _json(catalog_page(snap, ids=wanted, k=k, offset=offset, allowed=allowed, **filters.kwargs()))

    @router.get("/v1/web/facets", dependencies=read, summary="Filter values with counts over the matches (web app)")
    def get_facets(engine: EngineDep, filters: Annotated[_Filters, Depends()]) -> Response:
        snap, allowed = browse_mask(engine)
        given = filters.kwargs()
        if any(given.values()):
            rows = match_rows(snap, **given)
            return _json(facets(snap, rows[allowed[rows]]))
        key = (id(snap), str(engine.policy_dict().get("hash")))
        with cache.lock:
            if cache.facets is None or cache.facets[0] != key:
                rows = np.flatnonzero(snap.active & allowed)
                cache.facets = (key, facets(snap, rows))
            return _json(cache.facets[1])

    @router.get("/v1/web/personas", dependencies=read, summary="Synthetic shoppers to switch to (web app)")
    def get_personas(engine: EngineDep) -> Response:
        snap = _snapshot(engine)
        with cache.lock:
            if cache.personas is None or cache.personas[0] != id(snap):
                cache.personas = (id(snap), personas(snap))
            return _json({"personas": cache.personas[1]})

    @router.get("/v1/web/whatif", dependencies=read, summary="Relevance vs expected margin for a margin weight")
    def whatif(engine: EngineDep, margin: Annotated[float, Query(ge=0, le=10)] = 0.0,
               diversity: Annotated[float, Query(ge=0, le=5)] = 0.0,
               n: Annotated[int, Query(ge=1, le=200)] = 40, k: Annotated[int, Query(ge=1, le=50)] = 10) -> Response:
        sample = _whatif_sample(engine, cache, n)
        grid = sorted({*WHATIF_GRID, round(margin, 4)})
        curve = whatif_curve(sample, diversity=diversity, k=k, grid=grid, memo=sample.memo)
        current = next(p for p in curve if p["margin_weight"] == round(margin, 4))
        snap, ranker = sample.snapshot, sample.ranker
        return _json({"curve": curve, "current": current, "diversity": diversity, "n_requests": len(sample.contexts),
                      "policy_version": sample.document.get("version"), "method": "live ranker and policy code",
                      "k": k, "currency": snap.currency, "live_objective": ranker.objective.to_dict()})

    @router.get("/v1/web/metrics", dependencies=read, summary="Live service metrics for the console")
    def live_metrics(engine: EngineDep, request: Request) -> Response:
        registry = request.app.state.metrics.registry
        with cache.lock:
            total, rate = _events_rate(registry, cache.metrics)
            ctr = click_through(engine, cache.metrics)
        slates = {s.labels["surface"]: s.value for m in registry.collect() for s in m.samples
                  if s.name == "shopkeep_slates_total"}
        return _json({"latency_ms": {"recommendations": _percentiles(registry, "/v1/recommendations",
                                                                     (0.5, 0.95, 0.99)),
                                     "events": _percentiles(registry, "/v1/events", (0.5, 0.95, 0.99))},
                      "events_accepted": total, "events_per_s": round(rate, 3), "slates": slates,
                      "click_through": ctr, "policy_version": engine.policy_dict().get("version")})

    return router
