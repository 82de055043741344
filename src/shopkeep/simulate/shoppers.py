"""Synthetic shoppers (latent tastes, money habits, identity, consent) and the ground-truth response model.

The response model is the one the session simulator draws from, so ``purchase_probability`` is the
true probability that a shopper who views an item at a given price buys it (view → cart → purchase).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from shopkeep.simulate import taxonomy as tx
from shopkeep.simulate.catalog import COLOR_NAMES, CatalogArrays

__all__ = ["Shopper", "build_shoppers", "match_scores", "response_probabilities"]

TYPE_PRICE_CENTS = np.array([t.price * 100.0 for t in tx.TYPES])
_PREF_KEYS = ("fragrance_free", "vegan", "cruelty_free", "organic", "gluten_free", "waterproof", "wide", "color")


@dataclass(frozen=True, eq=False)
class Shopper:
    """One synthetic shopper. ``segment`` is the ground-truth archetype the tastes were drawn from.

    ``budget`` scales the price the shopper finds normal for a product type (1.0 = the type's median);
    ``type_weights`` and ``brand_affinity`` are indexed like ``taxonomy.TYPES`` and ``store.brands``.
    """

    shopper_id: str
    user_id: str | None
    anonymous_ids: tuple[str, ...]
    devices: tuple[str, ...]
    segment: str
    region: str
    age: int
    age_verified: bool
    loyalty_tier: str | None
    consent: Mapping[str, bool]
    skin_type: str
    apparel_size: str
    shoe_size: int
    wide_feet: bool
    fit_noise: float
    budget: float
    price_sensitivity: float
    activity: float
    replenish: float
    type_weights: np.ndarray
    brand_affinity: np.ndarray
    prefs: Mapping[str, float]
    colors: tuple[str, ...]

    @property
    def loyalty_member(self) -> bool:
        """Whether the shopper is in the loyalty programme."""
        return self.loyalty_tier is not None


def _type_weights(rng: np.random.Generator, arch: tx.Archetype, enabled: np.ndarray) -> np.ndarray:
    w = np.zeros(len(tx.TYPES))
    for cat, cw in arch.categories.items():
        idx = [i for i, t in enumerate(tx.TYPES) if t.category == cat and enabled[i]]
        if not idx:
            continue
        d = rng.dirichlet(np.full(len(idx), 0.8))
        boost = np.array([3.0 if tx.TYPES[i].key in arch.focus else 1.0 for i in idx])
        d = d * boost
        w[idx] += cw * d / d.sum()
    if w.sum() == 0:
        w = enabled.astype(float)
    w = w / w.sum() * 0.95 + enabled / enabled.sum() * 0.05
    return np.asarray(w / w.sum())


def _prefs(rng: np.random.Generator, arch: tx.Archetype, wide: bool) -> dict[str, float]:
    out = {}
    for key in _PREF_KEYS:
        base = arch.prefs.get(key, 0.0)
        extra = 0.8 if rng.random() < 0.15 else 0.0
        out[key] = float((base + extra) * rng.lognormal(0.0, 0.25))
    out["color"] = max(out["color"], 0.6)
    out["wide"] = 1.8 if wide else 0.0
    return out


def _brand_affinity(rng: np.random.Generator, cat: CatalogArrays, tw: np.ndarray) -> np.ndarray:
    aff = rng.normal(0.0, 0.3, size=len(cat.brands))
    top_cats = {tx.TYPES[i].category for i in np.argsort(-tw)[:4]}
    cands = [k for k, b in enumerate(cat.brands) if set(b.categories) & top_cats]
    if cands:
        fav = rng.choice(cands, size=min(4, len(cands)), replace=False)
        aff[fav] += 1.2
    return aff


def _one(rng: np.random.Generator, r: random.Random, k: int, arch_name: str, cat: CatalogArrays,
         enabled: np.ndarray, activity_scale: float) -> Shopper:
    arch = tx.ARCHETYPES[arch_name]
    tw = _type_weights(rng, arch, enabled)
    wide = r.random() < 0.15
    registered = r.random() < 0.65
    tier = (r.choices(("silver", "gold", "platinum"), (0.6, 0.3, 0.1))[0]
            if registered and r.random() < 0.5 else None)
    age = 18 + int(rng.gamma(3.0, 7.0))
    n_dev = 2 if r.random() < 0.35 else 1
    return Shopper(
        shopper_id=f"shopper-{k:06d}", user_id=f"user-{k:06d}" if registered else None,
        anonymous_ids=tuple(f"anon-{r.getrandbits(48):012x}" for _ in range(n_dev)),
        devices=tuple(r.choices(("mobile", "desktop", "tablet"), (0.6, 0.3, 0.1))[0] for _ in range(n_dev)),
        segment=arch_name, region=r.choices(list(tx.REGIONS), list(tx.REGIONS.values()))[0], age=age,
        age_verified=registered and age >= 21 and r.random() < 0.6, loyalty_tier=tier,
        consent={"personalization": r.random() < 0.9, "marketing_email": r.random() < (0.55 if registered else 0.1),
                 "marketing_sms": r.random() < 0.2, "data_sharing": r.random() < 0.3},
        skin_type=r.choice(tx.SKIN_TYPES),
        apparel_size=r.choices(tx.APPAREL_SIZES, (0.1, 0.25, 0.3, 0.22, 0.13))[0],
        shoe_size=r.choices(tx.SHOE_SIZES, (0.06, 0.12, 0.17, 0.2, 0.18, 0.13, 0.09, 0.05))[0],
        wide_feet=wide, fit_noise=r.gauss(0.0, 0.25),
        budget=arch.budget * float(rng.lognormal(0.0, 0.25)),
        price_sensitivity=arch.price_sensitivity * float(rng.lognormal(0.0, 0.25)),
        activity=activity_scale * arch.activity * float(rng.lognormal(-0.18, 0.6)), replenish=arch.replenish,
        type_weights=tw, brand_affinity=_brand_affinity(rng, cat, tw), prefs=_prefs(rng, arch, wide),
        colors=tuple(r.sample(COLOR_NAMES, 2)),
    )


def build_shoppers(rng: np.random.Generator, r: random.Random, n: int, cat: CatalogArrays,
                   departments: tuple[str, ...], activity_scale: float) -> list[Shopper]:
    """Draw ``n`` shoppers; archetypes whose categories are all disabled are not used."""
    enabled = np.array([t.department in departments for t in tx.TYPES])
    cats = {t.category for t in tx.TYPES if t.department in departments}
    names = [a for a, spec in tx.ARCHETYPES.items() if set(spec.categories) & cats]
    weights = np.array([tx.ARCHETYPES[a].weight for a in names])
    picks = rng.choice(len(names), size=n, p=weights / weights.sum())
    return [_one(rng, r, k, names[int(p)], cat, enabled, activity_scale) for k, p in enumerate(picks)]


def match_scores(s: Shopper, cat: CatalogArrays, idx: np.ndarray) -> np.ndarray:
    """How well items ``idx`` fit the shopper's tastes (brand, attributes, skin, colour, quality)."""
    a = cat.attrs
    p = s.prefs
    m = s.brand_affinity[cat.brand[idx]] + 0.4 * cat.quality[idx]
    ff = a["ff"][idx]
    m = m + p["fragrance_free"] * ((ff == 1) - 0.5 * (ff == 0))
    for key, col in (("vegan", "vegan"), ("cruelty_free", "cf"), ("organic", "organic"),
                     ("gluten_free", "gluten_free"), ("waterproof", "waterproof")):
        m = m + p[key] * (a[col][idx] == 1)
    fit = a["fit"][idx]
    # Wide feet make wide fits attractive and regular ones a worry; narrow feet avoid wide fits.
    m = m + (p["wide"] * (fit == 3) - 0.6 * (fit == 1) if s.wide_feet else -0.8 * (fit == 3))
    color = a["color"][idx]
    m = m + p["color"] * ((color == COLOR_NAMES.index(s.colors[0])) | (color == COLOR_NAMES.index(s.colors[1])))
    skin_bit = 1 << tx.SKIN_TYPES.index(s.skin_type)
    skin = a["skin"][idx]
    m = m + 0.5 * ((skin >= 0) & ((skin & skin_bit) > 0))
    return np.asarray(m, dtype=float)


def price_terms(s: Shopper, cat: CatalogArrays, idx: np.ndarray, price: np.ndarray) -> np.ndarray:
    """Price pain: sensitivity × log(price / the price this shopper finds normal for the type)."""
    ref = TYPE_PRICE_CENTS[cat.type_idx[idx]] * s.budget
    return np.asarray(s.price_sensitivity * np.log(np.maximum(price, 1) / ref))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


CART_BIAS, CART_MATCH, CART_PRICE = -3.55, 0.55, 0.9
BUY_BIAS, BUY_MATCH, BUY_PRICE = -1.45, 0.3, 0.7


def response_probabilities(s: Shopper, cat: CatalogArrays, idx: np.ndarray,
                           price: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(P(add to cart | view), P(purchase | in cart))`` of items ``idx`` at ``price`` (cents)."""
    m = match_scores(s, cat, idx)
    pt = price_terms(s, cat, idx, np.asarray(price, dtype=float))
    p_cart = _sigmoid(CART_BIAS + CART_MATCH * m - CART_PRICE * pt)
    p_buy = _sigmoid(BUY_BIAS + BUY_MATCH * m - BUY_PRICE * pt)
    reg = cat.attrs["regulated"][idx]
    if not s.age_verified:
        alcohol = s.region in tx.REGULATED["age_restricted_alcohol"]
        retinoid = s.region in tx.REGULATED["retinoid"]
        blocked = ((reg == 1) & alcohol) | ((reg == 2) & retinoid)
        p_buy = np.where(blocked, 0.0, p_buy)
    return p_cart, p_buy



def session_count(r: random.Random, s: Shopper, n_days: int) -> int:
    """Number of sessions the shopper starts in ``n_days`` (Poisson, capped)."""
    lam = min(s.activity * n_days, 80.0)
    # Knuth's method is exact and cheap for these small rates.
    limit, k, prod = math.exp(-lam), 0, r.random()
    while prod > limit:
        k += 1
        prod *= r.random()
    return k
