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

The what-if re-ranks a fixed sample of product-page requests (seeded) with
``ranking.Objective(relevance=1, margin=w)`` over the engine's own candidates and eligibility mask;
it logs no slates and changes nothing the engine serves.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
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
from shopkeep.ranking import Objective, Ranker
from shopkeep.serving.deps import EngineDep, require_scope

__all__ = ["WEB_DIR", "catalog_page", "click_through", "facets", "match_rows", "objective_scores", "personas",
           "web_router", "whatif_curve"]

#: The static files of the web app.
WEB_DIR = Path(__file__).resolve().parent / "web"
_PAGES = {"/": "index.html", "/console": "console.html"}
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml"}
#: Margin weights the what-if curve is drawn over.
WHATIF_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
_ANCHOR_SEED = 7
_METRICS_WINDOW = 5000


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


def catalog_page(snap: CatalogSnapshot, *, ids: Sequence[str] = (), k: int = 24, offset: int = 0,
                 **filters: Any) -> dict[str, Any]:
    """Matching items (see :func:`match_rows`; ``ids``: those of them, in the order given) as product
    cards, with ``total`` before paging."""
    if ids:
        allowed = np.zeros(snap.n, dtype=bool)
        allowed[match_rows(snap, **{**filters, "q": ""})] = True
        rows = np.array([i for i in snap.indices(list(ids)).tolist() if i >= 0 and allowed[i]], dtype=np.int64)
    else:
        rows = match_rows(snap, **filters)
    stock = snap.in_stock()
    page = rows[offset: offset + k]
    return {"items": [_card(snap, int(i), stock) for i in page], "total": len(rows), "offset": offset}


@dataclass
class _Cache:
    """Per-snapshot derived data (facets, personas) and the what-if's sampled requests."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    facets: tuple[int, dict[str, Any]] | None = None
    personas: tuple[int, list[dict[str, Any]]] | None = None
    whatif: tuple[tuple[int, ...], list[_Parts]] | None = None
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
class _Parts:
    """One request's candidates with the objective's parts: snapshot indices, relevance in [0, 1],
    purchase probability and expected margin (minor units), in fused order."""

    idx: np.ndarray
    rel: np.ndarray
    p: np.ndarray
    margin: np.ndarray


def _parts(ranker: Ranker, contexts: Sequence[Context], fused: Sequence[Sequence[Any]],
           snap: CatalogSnapshot) -> list[_Parts]:
    """The objective's parts per candidate: they do not depend on the weights, so one model call
    serves every point of the curve."""
    base = Ranker(Objective(relevance=1.0), ranker.model, ranker.return_cost_fraction)
    out = []
    for ranked in base.rank_many(contexts, fused, snap):
        items = list(ranked)
        out.append(_Parts(snap.indices([s.item_id for s in items]),
                          np.array([s.relevance for s in items], dtype=np.float64),
                          np.array([s.p_purchase for s in items], dtype=np.float64),
                          np.array([s.expected_margin_minor for s in items], dtype=np.float64)))
    return out


def _relative(values: np.ndarray) -> np.ndarray:
    top = float(np.abs(values).max()) if values.size else 0.0
    return values / top if top > 0 else np.zeros_like(values)


def objective_scores(parts: _Parts, objective: Objective) -> np.ndarray:
    """``relevance * r + margin * m + conversion * p`` with m and p relative to the request's largest
    (the formula of :class:`shopkeep.ranking.Ranker`)."""
    return (objective.relevance * parts.rel + objective.margin * _relative(parts.margin)
            + objective.conversion * _relative(parts.p))


def _diversify(snap: CatalogSnapshot, idx: np.ndarray, score: np.ndarray, k: int, diversity: float) -> list[int]:
    """Positions of the greedy top ``k``: each earlier pick of the same brand or leaf category lowers an
    item's score by ``diversity`` x 10% of the best score (diversity 0: best score first)."""
    order: list[int] = np.lexsort((np.arange(len(score)), -score))[: max(4 * k, 40)].tolist()
    if diversity <= 0 or not order:
        return order[:k]
    step = 0.1 * diversity * max(abs(float(score[order[0]])), 1e-9)
    leaf = [snap.category_paths[int(idx[j])][-1] if snap.category_paths[int(idx[j])] else "" for j in order]
    brand = [int(snap.brand[int(idx[j])]) for j in order]
    brand_n: Counter[int] = Counter()
    leaf_n: Counter[str] = Counter()
    chosen: list[int] = []
    left = list(range(len(order)))
    while left and len(chosen) < k:
        best = max(left, key=lambda n: (float(score[order[n]]) - step * (brand_n[brand[n]] + leaf_n[leaf[n]]), -n))
        left.remove(best)
        brand_n[brand[best]] += 1
        leaf_n[leaf[best]] += 1
        chosen.append(order[best])
    return chosen


def whatif_curve(parts: Sequence[_Parts], snap: CatalogSnapshot, *, diversity: float = 0.0, k: int = 10,
                 grid: Sequence[float] = WHATIF_GRID, conversion: float = 0.0) -> list[dict[str, float]]:
    """Per margin weight in ``grid``: the sample's mean summed relevance of the top ``k`` (as a fraction
    of weight 0's), mean expected margin per slate (minor units) and mean distinct brands."""
    rows = []
    for w in grid:
        objective = Objective(relevance=1.0, margin=float(w), conversion=conversion)
        rel, margin, brands = [], [], []
        for part in parts:
            top = _diversify(snap, part.idx, objective_scores(part, objective), k, diversity)
            rel.append(float(part.rel[top].sum()))
            margin.append(float(part.margin[top].sum()))
            brands.append(len({int(snap.brand[int(part.idx[j])]) for j in top}))
        rows.append((float(w), float(np.mean(rel)), float(np.mean(margin)), float(np.mean(brands))))
    base = min(rows, key=lambda r: r[0])[1] or 1.0
    return [{"margin_weight": w, "relevance": r / base, "expected_margin_minor": m, "distinct_brands": b}
            for w, r, m, b in rows]


def _whatif_sample(engine: Engine, cache: _Cache, n: int) -> tuple[list[_Parts], CatalogSnapshot, Ranker]:
    """The objective's parts for ``n`` product-page requests on seeded in-stock anchors (cached per
    catalog snapshot, policy and ranker)."""
    b = _bindings(engine)
    snap: CatalogSnapshot = b.snapshot
    key = (id(b.sources), id(b.policy), id(b.ranker), n)
    with cache.lock:
        if cache.whatif is not None and cache.whatif[0] == key:
            return cache.whatif[1], snap, b.ranker
    rows = np.flatnonzero(snap.active & snap.in_stock())
    anchors = np.random.default_rng(_ANCHOR_SEED).choice(rows, size=min(n, rows.size), replace=False)
    requests = [ContextRequest(surface="pdp", anonymous_id=f"whatif-{j}", item_id=snap.item_ids[i], k=10)
                for j, i in enumerate(anchors.tolist())]
    contexts = [engine.features.context(r) for r in requests]
    masks = [b.policy.eligibility(snap, c) for c in contexts]
    fused = b.sources.retriever("pdp").retrieve(contexts, masks, k=engine.retrieval_k)
    parts = _parts(b.ranker, contexts, fused, snap)
    with cache.lock:
        cache.whatif = (key, parts)
    return parts, snap, b.ranker


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
                k: Annotated[int, Query(ge=1, le=100)] = 24, offset: Annotated[int, Query(ge=0)] = 0) -> Response:
        wanted = [p.strip() for p in ids.split(",") if p.strip()]
        return _json(catalog_page(_snapshot(engine), ids=wanted, k=k, offset=offset, **filters.kwargs()))

    @router.get("/v1/web/facets", dependencies=read, summary="Filter values with counts over the matches (web app)")
    def get_facets(engine: EngineDep, filters: Annotated[_Filters, Depends()]) -> Response:
        snap = _snapshot(engine)
        given = filters.kwargs()
        if any(given.values()):
            return _json(facets(snap, match_rows(snap, **given)))
        with cache.lock:
            if cache.facets is None or cache.facets[0] != id(snap):
                cache.facets = (id(snap), facets(snap))
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
        parts, snap, ranker = _whatif_sample(engine, cache, n)
        grid = sorted({*WHATIF_GRID, round(margin, 4)})
        curve = whatif_curve(parts, snap, diversity=diversity, k=k, grid=grid, conversion=ranker.objective.conversion)
        current = next(p for p in curve if p["margin_weight"] == round(margin, 4))
        return _json({"curve": curve, "current": current, "diversity": diversity, "n_requests": len(parts),
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
