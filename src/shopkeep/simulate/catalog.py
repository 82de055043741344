"""Vectorized catalog generation: brands, variant groups, typed attributes, prices, stock, ratings.

Everything is held column-wise in :class:`CatalogArrays` (numpy) so that a million items stay
feasible; :mod:`shopkeep.simulate.items` turns the columns into :class:`shopkeep.types.Item` objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from shopkeep.simulate import taxonomy as tx

__all__ = ["Brand", "CatalogArrays", "build_catalog"]

FITS = ("slim", "regular", "relaxed", "wide")
MATERIALS = tx.APPAREL_MATERIALS + tx.SHOE_MATERIALS
COLOR_NAMES = tuple(tx.COLORS)
REGULATED_CLASSES = (None, "age_restricted_alcohol", "retinoid")
_BRANDS_PER_DEPT = {"beauty": 36, "apparel": 18, "footwear": 12, "grocery": 24}
_ATTR_KEYS = ("ff", "vegan", "cf", "skin", "spf", "shade", "size_ml", "color", "cword", "size", "fit",
              "material", "waterproof", "organic", "gluten_free", "diet", "ingredient", "style", "regulated")


@dataclass(frozen=True)
class Brand:
    """A brand: its department, price tier, sizing bias (size units, + runs large) and MAP policy."""

    name: str
    department: str
    tier: str
    price_mult: float
    sizing_bias: float
    map_policy: bool
    categories: tuple[str, ...]
    vegan_rate: float
    ff_rate: float
    organic_rate: float


@dataclass
class CatalogArrays:
    """Column-wise catalog: one row per item (SKU); ``group`` ties variants of one product."""

    brands: list[Brand]
    type_idx: np.ndarray
    group: np.ndarray
    brand: np.ndarray
    price: np.ndarray  # int64 cents
    cost: np.ndarray
    map_price: np.ndarray  # 0 = no MAP
    pop: np.ndarray  # choice weight within its type (sums to 1 per type)
    quality: np.ndarray
    attrs: dict[str, np.ndarray]
    inventory: np.ndarray  # (n, len(LOCATIONS)) int
    created_s: np.ndarray  # epoch seconds
    rating_avg: np.ndarray  # nan = no rating
    rating_count: np.ndarray
    titles: list[str] = field(default_factory=list)
    descriptions: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        """Number of items."""
        return int(self.type_idx.shape[0])


def _make_brands(rng: np.random.Generator, departments: tuple[str, ...]) -> list[Brand]:
    names = [f"{a} {b}" for a in tx.BRAND_PARTS[0] for b in tx.BRAND_PARTS[1]]
    order = rng.permutation(len(names))
    brands: list[Brand] = []
    for dept in departments:
        cats = sorted({t.category for t in tx.TYPES if t.department == dept})
        for k in range(_BRANDS_PER_DEPT[dept]):
            tier_i = int(rng.choice(4, p=[0.3, 0.4, 0.22, 0.08]))
            own = {cats[k % len(cats)]}
            if dept == "beauty" and rng.random() < 0.5:
                own.add(cats[int(rng.integers(len(cats)))])
            brands.append(Brand(
                name=names[int(order[len(brands)])], department=dept, tier=tx.TIERS[tier_i],
                price_mult=tx.TIER_MULT[tier_i], sizing_bias=float(rng.normal(0.0, 0.35)),
                map_policy=bool(tier_i >= 2 and rng.random() < 0.6),
                categories=tuple(sorted(own)) if dept == "beauty" else tuple(cats),
                vegan_rate=float(rng.beta(2, 3)), ff_rate=float(rng.beta(1.2, 3)),
                organic_rate=float(rng.beta(1.5, 3)),
            ))
    return brands


def _allocate(n_items: int, specs: list[tx.TypeSpec]) -> np.ndarray:
    dept_share = {d: s for d, s in tx.DEPARTMENTS.items() if any(t.department == d for t in specs)}
    total = sum(dept_share.values())
    dept_type_sum = {d: sum(t.share for t in specs if t.department == d) for d in dept_share}
    w = np.array([dept_share[t.department] / total * t.share / dept_type_sum[t.department] for t in specs])
    raw = w * n_items
    counts = np.floor(raw).astype(np.int64)
    rest = n_items - int(counts.sum())
    counts[np.argsort(-(raw - counts), kind="stable")[:rest]] += 1
    return np.asarray(counts, dtype=np.int64)


def _variant_counts(rng: np.random.Generator, spec: tx.TypeSpec, n: int) -> np.ndarray:
    lo, hi = {"none": (1, 1), "shade": (3, 8), "volume": (1, max(1, len(spec.sizes_ml))),
              "apparel_size": (3, 5), "shoe_size": (5, 8)}[spec.variant]
    est = int(n / ((lo + hi) / 2)) + 8
    counts = rng.integers(lo, hi + 1, size=est)
    while counts.sum() < n:
        counts = np.concatenate([counts, rng.integers(lo, hi + 1, size=est)])
    cum = np.cumsum(counts)
    k = int(np.searchsorted(cum, n))
    counts = counts[: k + 1].copy()
    counts[-1] -= int(cum[k]) - n
    return counts


def _bern(rng: np.random.Generator, p: np.ndarray | float, size: int) -> np.ndarray:
    return np.asarray(rng.random(size) < p).astype(np.int8)


def _beauty_attrs(rng: np.random.Generator, spec: tx.TypeSpec, b: list[Brand], bg: np.ndarray,
                  a: dict[str, np.ndarray]) -> None:
    g = bg.shape[0]
    ff_rate = np.array([b[i].ff_rate for i in bg])
    boost = {"Skincare": 0.35, "Makeup": 0.1, "Hair": 0.05, "Bath & Body": 0.05}.get(spec.category, 0.0)
    a["ff"] = np.zeros(g, np.int8) if spec.category == "Fragrance" else _bern(rng, ff_rate + boost, g)
    a["vegan"] = _bern(rng, np.array([b[i].vegan_rate for i in bg]), g)
    a["cf"] = np.maximum(a["vegan"], _bern(rng, 0.45, g))
    if spec.category == "Skincare":
        bits = np.array([1 << int(rng.integers(5)) | (1 << int(rng.integers(5)) if rng.random() < 0.4 else 0)
                         for _ in range(g)], dtype=np.int64)
        a["skin"] = np.where(rng.random(g) < 0.35, 31, bits)
    if spec.key == "sunscreen":
        a["spf"] = rng.choice(np.array([15, 30, 50]), size=g, p=[0.15, 0.45, 0.4])
    elif spec.key == "moisturizer":
        a["spf"] = np.where(rng.random(g) < 0.25, rng.choice(np.array([15, 30]), size=g), 0)
    if spec.key in ("serum", "eye_cream", "moisturizer"):
        a["ingredient"] = np.asarray(rng.integers(len(tx.KEY_INGREDIENTS), size=g))
        retinol = a["ingredient"] == tx.KEY_INGREDIENTS.index("retinol")
        a["regulated"] = np.where(retinol & (rng.random(g) < 0.5), 2, 0)
    if spec.key in ("eau_de_parfum", "eau_de_toilette"):
        a["regulated"] = np.where(rng.random(g) < 0.2, 1, 0)


def _style_attrs(rng: np.random.Generator, spec: tx.TypeSpec, a: dict[str, np.ndarray], g: int) -> None:
    a["color"] = rng.choice(len(COLOR_NAMES), size=g, p=[0.16, 0.2, 0.12, 0.14, 0.1, 0.1, 0.1, 0.08])
    a["cword"] = rng.integers(0, 12, size=g)
    if spec.department == "apparel":
        mat_p = np.array([3.0 if spec.key == "dress" else 0.5, 3, 1, 1, 1.5 if spec.key == "sweater" else 0.3,
                          4.0 if spec.key == "jeans" else 0.3, 1.5])
        a["material"] = rng.choice(len(tx.APPAREL_MATERIALS), size=g, p=mat_p / mat_p.sum())
        a["fit"] = rng.choice(3, size=g, p=[0.3, 0.5, 0.2])
        return
    a["material"] = len(tx.APPAREL_MATERIALS) + rng.integers(len(tx.SHOE_MATERIALS), size=g)
    wide_p = 0.3 if spec.key in ("hiking_boot", "running_shoe", "sneaker") else 0.12
    a["fit"] = np.where(rng.random(g) < wide_p, 3, 1)
    wp = {"hiking_boot": 0.6, "ankle_boot": 0.3, "running_shoe": 0.15, "sneaker": 0.1}.get(spec.key, 0.0)
    a["waterproof"] = _bern(rng, wp, g)


def _grocery_attrs(rng: np.random.Generator, spec: tx.TypeSpec, b: list[Brand], bg: np.ndarray,
                   a: dict[str, np.ndarray]) -> None:
    g = bg.shape[0]
    a["organic"] = _bern(rng, np.array([b[i].organic_rate for i in bg]), g)
    a["vegan"] = _bern(rng, 0.25 if spec.key in ("yogurt", "protein_bar") else 0.65, g)
    a["gluten_free"] = _bern(rng, {"pasta": 0.15, "granola": 0.3}.get(spec.key, 0.5), g)
    diet = np.zeros(g, np.int64)
    for bit in range(len(tx.DIETARY)):
        p = 0.5 if (spec.key == "protein_bar" and tx.DIETARY[bit] == "high_protein") else 0.12
        diet |= np.asarray(rng.random(g) < p).astype(np.int64) << bit
    a["diet"] = diet


def _anchor(spec: tx.TypeSpec, a: dict[str, np.ndarray]) -> None:
    """Pin the first product of a few types so the documented examples always exist."""
    if spec.key == "dress":
        a["color"][0], a["cword"][0], a["material"][0], a["style"][0] = 0, 0, 0, 0  # Crimson Satin Evening
    elif spec.key == "hiking_boot":
        a["waterproof"][0], a["fit"][0] = 1, 3
    elif spec.key == "moisturizer":
        a["ff"][0], a["skin"][0] = 1, 31
    elif spec.key == "sunscreen":
        a["spf"][0] = 50


def _group_attrs(rng: np.random.Generator, spec: tx.TypeSpec, brands: list[Brand],
                 bg: np.ndarray) -> dict[str, np.ndarray]:
    g = bg.shape[0]
    a: dict[str, np.ndarray] = {"style": np.asarray(rng.integers(len(spec.styles), size=g)),
                                "regulated": np.zeros(g, np.int64)}
    if spec.department == "beauty":
        _beauty_attrs(rng, spec, brands, bg, a)
    elif spec.department in ("apparel", "footwear"):
        _style_attrs(rng, spec, a, g)
    else:
        _grocery_attrs(rng, spec, brands, bg, a)
    _anchor(spec, a)
    return a


def _variant_attrs(rng: np.random.Generator, spec: tx.TypeSpec, counts: np.ndarray,
                   vpos: np.ndarray, gi: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-item variant columns and the price factor of each variant."""
    n = vpos.shape[0]
    out: dict[str, np.ndarray] = {}
    factor = np.ones(n)
    c = counts[gi]
    if spec.variant == "volume":
        sizes = np.array(spec.sizes_ml)
        start = rng.integers(0, len(sizes) - counts + 1)[gi]
        out["size_ml"] = sizes[start + vpos]
        factor = (out["size_ml"] / sizes[start]) ** 0.75
    elif spec.variant == "shade":
        fams = len(tx.SHADES[spec.key])
        ordered = spec.key in ("foundation", "concealer")
        out["shade"] = np.asarray((vpos * fams // c) if ordered else rng.integers(fams, size=n))
    elif spec.variant == "apparel_size":
        out["size"] = rng.integers(0, 5 - counts + 1)[gi] + vpos
    elif spec.variant == "shoe_size":
        out["size"] = 6 + rng.integers(0, 8 - counts + 1)[gi] + vpos
    return out, factor


def _round_price(usd: np.ndarray) -> np.ndarray:
    cents = np.where(usd < 10, np.round(usd * 2) * 50, np.round(usd) * 100).astype(np.int64) - 1
    return np.maximum(cents, 99)


def _type_block(rng: np.random.Generator, t: int, n: int, brands: list[Brand],
                brand_ids: np.ndarray) -> dict[str, np.ndarray]:
    spec = tx.TYPES[t]
    counts = _variant_counts(rng, spec, n)
    g = counts.shape[0]
    gi = np.repeat(np.arange(g), counts)
    vpos = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
    bw = 1.0 / np.arange(1, brand_ids.shape[0] + 1) ** 0.7
    bg = brand_ids[rng.choice(brand_ids.shape[0], size=g, p=bw / bw.sum())]
    mult = np.array([brands[i].price_mult for i in bg])
    group_attrs = _group_attrs(rng, spec, brands, bg)
    var_attrs, factor = _variant_attrs(rng, spec, counts, vpos, gi)
    base = spec.price * mult * np.exp(rng.normal(0.0, 0.3, size=g))
    price = _round_price(base[gi] * factor)
    quality_g = np.asarray(rng.normal(0.0, 1.0, size=g))
    rank = rng.permutation(g)
    pop_g = (rank + 1.0) ** -0.95 * np.exp(0.4 * quality_g)
    pop = pop_g[gi] * rng.gamma(4.0, 0.25, size=n) / counts[gi]
    block = {"type_idx": np.full(n, t), "group_local": gi, "vpos": vpos, "brand": bg[gi], "price": price,
             "pop": pop / pop.sum(), "quality": quality_g[gi]}
    for key in _ATTR_KEYS:
        if key in var_attrs:
            block[key] = var_attrs[key]
        elif key in group_attrs:
            block[key] = group_attrs[key][gi]
        else:
            block[key] = np.full(n, -1 if key in ("shade", "color", "cword", "size", "fit", "material",
                                                   "ingredient", "ff", "vegan", "cf", "waterproof",
                                                   "organic", "gluten_free", "diet", "skin") else 0)
    return block


def _stock(rng: np.random.Generator, pop: np.ndarray, grocery: np.ndarray) -> np.ndarray:
    n = pop.shape[0]
    rel = pop / np.maximum(pop.max(), 1e-12)
    inv = np.zeros((n, len(tx.LOCATIONS)), np.int64)
    inv[:, 0] = rng.poisson(6 + 120 * np.sqrt(rel))
    p_store = np.where(grocery, 0.8, 0.4)
    for j in range(1, len(tx.LOCATIONS)):
        inv[:, j] = (rng.random(n) < p_store) * (rng.poisson(3, size=n) + 1)
    inv[rng.random(n) < 0.1, 0] = 0
    inv[rng.random(n) < 0.05] = 0
    return inv


def build_catalog(rng: np.random.Generator, n_items: int, departments: tuple[str, ...],
                  start_s: int) -> CatalogArrays:
    """Generate ``n_items`` items over the enabled departments, column-wise."""
    brands = _make_brands(rng, departments)
    type_ids = [i for i, t in enumerate(tx.TYPES) if t.department in departments]
    per_type = _allocate(n_items, [tx.TYPES[i] for i in type_ids])
    blocks, group_offset = [], 0
    for t, n in zip(type_ids, per_type.tolist(), strict=True):
        if n == 0:
            continue
        spec = tx.TYPES[t]
        ids = np.array([i for i, b in enumerate(brands) if b.department == spec.department
                        and spec.category in b.categories])
        block = _type_block(rng, t, n, brands, ids)
        block["group"] = block.pop("group_local") + group_offset
        group_offset = int(block["group"].max()) + 1
        blocks.append(block)
    col = {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}
    n = col["price"].shape[0]
    price = col["price"]
    cost = np.floor(price * rng.uniform(0.35, 0.70, size=n)).astype(np.int64)
    has_map = np.array([brands[i].map_policy for i in col["brand"]]) & (rng.random(n) < 0.8)
    map_price = np.where(has_map, np.floor(price * rng.uniform(0.8, 1.0, size=n)), 0).astype(np.int64)
    rel = _rel_pop(col)
    new = rng.random(n) < 0.06
    age_days = np.where(new, rng.uniform(0, 14, size=n), rng.uniform(14, 730, size=n))
    count = rng.poisson(np.where(new, 0.3, 1.0) * 300 * rel * np.exp(rng.normal(0, 0.5, size=n)))
    avg = np.clip(np.round(3.9 + 0.45 * col["quality"] + rng.normal(0, 0.25, size=n), 1), 1.0, 5.0)
    dept = np.array([tx.TYPES[t].department for t in col["type_idx"]])
    return CatalogArrays(
        brands=brands, type_idx=col["type_idx"], group=col["group"], brand=col["brand"], price=price,
        cost=cost, map_price=map_price, pop=col["pop"], quality=col["quality"],
        attrs={k: col[k] for k in (*_ATTR_KEYS, "vpos")},
        inventory=_stock(rng, rel, dept == "grocery"),
        created_s=(start_s - age_days * 86400).astype(np.int64),
        rating_avg=np.where(count > 0, avg, np.nan), rating_count=count.astype(np.int64),
    )


def _rel_pop(col: dict[str, np.ndarray]) -> np.ndarray:
    """Popularity relative to the most popular item of the same type, in (0, 1]."""
    top = np.zeros(len(tx.TYPES))
    np.maximum.at(top, col["type_idx"], col["pop"])
    return np.asarray(col["pop"] / top[col["type_idx"]])
