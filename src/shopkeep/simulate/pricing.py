"""Price response for the synthetic store: shoppers with hidden price sensitivity, for offer-policy tests.

A frozen :class:`PriceWorldConfig` plus a seed gives a :class:`PriceWorld`: items (list price, cost,
fulfilment cost; each focal item has a substitute and a complement) and shoppers with HIDDEN
parameters (base propensity, price sensitivity, cue responsiveness, shipping sensitivity). Each shopper
makes ``visits`` visits; at each the policy picks a :class:`Treatment` and the world draws purchases of
the focal item, its substitute and its complement. Ground truth includes:

* price sensitivity: focal log-odds move by ``beta * m_cat * ln(list / paid)`` (times coupon fatigue;
  ``m_cat`` is a hidden per-category multiplier, the category itself is public);
* stock-up / pull-forward: a purchase at a discount lowers the next visits' base log-odds;
* cannibalization: uplift on the focal item takes sales from its substitute;
* halo: a bundle raises the complement's purchase probability (at the bundle discount);
* coupon fatigue: each incentive already received damps the response by ``exp(-fatigue * n)``.

Decision code must read only :meth:`PriceWorld.observe` (public features) and the logged
:class:`Exposure` records; :meth:`PriceWorld.expected_value` is the oracle's privilege.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

__all__ = ["CONFIGS", "TREATMENTS", "Exposure", "PriceWorld", "PriceWorldConfig", "Treatment", "VisitOutcome"]


@dataclass(frozen=True, slots=True)
class Treatment:
    """What the shopper experiences: a discount on the focal item and/or non-price nudges."""

    name: str
    discount_bps: int = 0
    amount_off_cents: int = 0
    cue: bool = False
    loyalty: bool = False
    free_shipping: bool = False
    bundle: bool = False
    urgent: bool = False

    def paid(self, price: int) -> int:
        """The unit price paid for the focal item, in cents."""
        return max(0, price - price * self.discount_bps // 10_000 - self.amount_off_cents)


#: The treatments the simulator knows (the offers package maps its actions to these names).
TREATMENTS: dict[str, Treatment] = {t.name: t for t in (
    Treatment("no_action"), Treatment("speed_cue", cue=True), Treatment("loyalty_reminder", loyalty=True),
    Treatment("free_shipping", free_shipping=True), Treatment("bundle", bundle=True),
    Treatment("pct_10", discount_bps=1000), Treatment("pct_20", discount_bps=2000),
    Treatment("amount_off", amount_off_cents=300), Treatment("time_bound", discount_bps=1000, urgent=True),
)}


@dataclass(frozen=True, slots=True)
class PriceWorldConfig:
    """Hidden-parameter distributions of one frozen world (the seed varies, the config does not)."""

    name: str = "default"
    n_items: int = 60
    n_shoppers: int = 400
    visits: int = 3
    cost_ratio: tuple[float, float] = (0.45, 0.7)
    base_logit: tuple[float, float] = (-1.6, 0.8)
    sensitivity: tuple[float, float] = (3.0, 2.0)
    cue_effect: float = 0.35
    loyalty_effect: float = 0.4
    ship_effect: float = 0.6
    ship_cost_cents: int = 599
    halo: float = 1.2
    stockup: float = 1.5
    cannibal: float = 0.6
    fatigue: float = 0.35
    #: Hidden multiplier of every shopper's price sensitivity per item category (category = item % len).
    category_sensitivity: tuple[float, ...] = (0.6, 0.8, 1.0, 1.2, 1.4)


#: Three frozen configurations; in ``thin_margin`` no discount ever pays.
CONFIGS: dict[str, PriceWorldConfig] = {
    "responsive": PriceWorldConfig(name="responsive"),
    "thin_margin": PriceWorldConfig(name="thin_margin", cost_ratio=(0.82, 0.9), sensitivity=(0.8, 0.4)),
    "fatigued": PriceWorldConfig(name="fatigued", sensitivity=(2.0, 2.5), fatigue=0.9, stockup=3.0, cannibal=0.9),
}


@dataclass(frozen=True, slots=True)
class VisitOutcome:
    """What happened at one visit (cents): purchases, contribution margin and incentive spend."""

    focal: bool
    substitute: bool
    complement: bool
    contribution: int
    incentive: int
    focal_contribution: int = 0


@dataclass(frozen=True, slots=True)
class Exposure:
    """One logged, randomized exposure: public features, the action, its propensity, the outcomes."""

    shopper_key: str
    visit: int
    item: int
    features: dict[str, float]
    action: str
    propensity: float
    outcome: VisitOutcome
    later_contribution: int = 0
    group: str = ""
    price_ratio: float = 1.0


@dataclass
class _ShopperState:
    incentives: int = 0
    stock: float = 0.0


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@dataclass
class PriceWorld:
    """One seeded world. Build with :meth:`create`; hidden arrays end in ``_h`` (never read them)."""

    config: PriceWorldConfig
    seed: int
    price: np.ndarray
    cost: np.ndarray
    substitute: np.ndarray
    complement: np.ndarray
    member: np.ndarray
    a_h: np.ndarray
    beta_h: np.ndarray
    cue_h: np.ndarray
    ship_h: np.ndarray
    proxy: np.ndarray
    states: list[_ShopperState] = field(default_factory=list)

    @property
    def category(self) -> np.ndarray:
        """Public category index of every item (``item % len(config.category_sensitivity)``)."""
        return np.arange(self.config.n_items) % len(self.config.category_sensitivity)

    @classmethod
    def create(cls, config: PriceWorldConfig, seed: int, *, n_shoppers: int | None = None) -> PriceWorld:
        """Draw items and shoppers from ``config`` with ``seed`` (same inputs, same world)."""
        rng = np.random.default_rng(seed)
        n, m = config.n_items, n_shoppers or config.n_shoppers
        price = np.round(np.exp(rng.uniform(math.log(8), math.log(90), n)) * 100).astype(np.int64) - 1
        cost = np.round(price * rng.uniform(*config.cost_ratio, n)).astype(np.int64)
        idx = np.arange(n)
        beta = np.maximum(0.0, rng.normal(*config.sensitivity, m))
        a = rng.normal(*config.base_logit, m)
        # Public proxies are noisy views of the hidden traits (deal affinity, engagement).
        proxy = np.column_stack([beta + rng.normal(0, 0.8, m), a + rng.normal(0, 0.5, m)])
        return cls(config, seed, price, cost, (idx + 1) % n, (idx + n // 2) % n, rng.random(m) < 0.4,
                   a, beta, rng.gamma(2.0, 0.5, m), rng.gamma(2.0, 0.5, m), proxy,
                   [_ShopperState() for _ in range(m)])

    @property
    def n_shoppers(self) -> int:
        """How many shoppers this world holds."""
        return int(self.a_h.shape[0])

    def observe(self, shopper: int, item: int) -> dict[str, float]:
        """The public features of a visit: loyalty, deal-affinity and engagement proxies, price, offers seen."""
        st = self.states[shopper]
        return {"loyalty_member": float(self.member[shopper]), "deal_affinity": float(self.proxy[shopper, 0]),
                "engagement": float(self.proxy[shopper, 1]), "log_price": math.log(self.price[item] / 100.0),
                "offers_seen": float(st.incentives)}

    def probabilities(self, shopper: int, item: int, t: Treatment) -> tuple[float, float, float]:
        """Hidden-truth purchase probabilities (focal, substitute, complement) under treatment ``t``."""
        c, st = self.config, self.states[shopper]
        damp = math.exp(-c.fatigue * st.incentives)
        base = self.a_h[shopper] - st.stock
        paid = t.paid(int(self.price[item]))
        cat = c.category_sensitivity[item % len(c.category_sensitivity)]
        lift = self.beta_h[shopper] * cat * math.log(self.price[item] / max(paid, 1)) * damp
        lift += c.cue_effect * self.cue_h[shopper] * (t.cue or t.urgent)
        lift += c.loyalty_effect * (t.loyalty and bool(self.member[shopper])) * damp
        lift += c.ship_effect * self.ship_h[shopper] * t.free_shipping * damp
        p0, p = _sig(base), _sig(base + lift)
        p_sub = _sig(base - 1.0) * max(0.0, 1.0 - c.cannibal * max(0.0, p - p0) / max(1.0 - p0, 1e-9))
        p_comp = _sig(base - 2.0 + (c.halo * damp if t.bundle else 0.0))
        return p, p_sub, p_comp

    def _money(self, item: int, t: Treatment, focal: bool, sub: bool, comp: bool) -> tuple[int, int, int]:
        c, s, k = self.config, int(self.substitute[item]), int(self.complement[item])
        incentive, contribution, own = 0, 0, 0
        if focal:
            paid = t.paid(int(self.price[item]))
            incentive += int(self.price[item]) - paid + (c.ship_cost_cents if t.free_shipping else 0)
            own = paid - int(self.cost[item]) - (c.ship_cost_cents if t.free_shipping else 0)
            contribution += own
        if sub:
            contribution += int(self.price[s] - self.cost[s])
        if comp:
            off = int(self.price[k]) * 15 // 100 if (t.bundle and focal) else 0
            incentive += off
            contribution += int(self.price[k] - self.cost[k]) - off
        return contribution, incentive, own

    def expected_value(self, shopper: int, item: int, t: Treatment) -> float:
        """Oracle: expected contribution (cents) of ``t`` now, minus the pull-forward loss on later visits."""
        p, p_sub, p_comp = self.probabilities(shopper, item, t)
        c = self.config
        paid = t.paid(int(self.price[item]))
        ship = c.ship_cost_cents if t.free_shipping else 0
        k, s = int(self.complement[item]), int(self.substitute[item])
        comp_margin = int(self.price[k] - self.cost[k])
        ev = p * (paid - int(self.cost[item]) - ship) + p_sub * int(self.price[s] - self.cost[s])
        ev += p_comp * (comp_margin - (int(self.price[k]) * 15 // 100 if t.bundle else 0) * p) if t.bundle \
            else p_comp * comp_margin
        disc = 1.0 - paid / self.price[item]
        if disc > 0:
            st = self.states[shopper]
            base = self.a_h[shopper] - st.stock
            loss = _sig(base) - _sig(base - c.stockup * disc)
            ev -= p * loss * float(np.mean(self.price - self.cost)) * 0.8
        return float(ev)

    def step(self, shopper: int, item: int, t: Treatment, u: Sequence[float]) -> VisitOutcome:
        """Play one visit with uniforms ``u`` (3 numbers, for common random numbers across policies)."""
        p, p_sub, p_comp = self.probabilities(shopper, item, t)
        focal, sub, comp = u[0] < p, u[1] < p_sub, u[2] < p_comp
        contribution, incentive, own = self._money(item, t, focal, sub, comp)
        st = self.states[shopper]
        st.stock *= 0.5
        disc = 1.0 - t.paid(int(self.price[item])) / self.price[item]
        if focal and disc > 0:
            st.stock += self.config.stockup * disc
        if t.name != "no_action" and t.name != "speed_cue":
            st.incentives += 1
        return VisitOutcome(focal, sub, comp, contribution, incentive, own)

    def run(self, choose: Callable[[int, int, dict[str, float]], str], rng_seed: int) -> list[Exposure]:
        """Every shopper's visits under policy ``choose(shopper, item, features) -> treatment name``."""
        rng = np.random.default_rng(rng_seed)
        items = rng.integers(0, self.config.n_items, size=(self.n_shoppers, self.config.visits))
        uniforms = rng.random((self.n_shoppers, self.config.visits, 3))
        out: list[Exposure] = []
        for s in range(self.n_shoppers):
            first = len(out)
            for v in range(self.config.visits):
                item = int(items[s, v])
                feats = self.observe(s, item)
                name = choose(s, item, feats)
                outcome = self.step(s, item, TREATMENTS[name], uniforms[s, v])
                ratio = TREATMENTS[name].paid(int(self.price[item])) / float(self.price[item])
                out.append(Exposure(f"sim-{self.seed}-{s}", v, item, feats, name, 1.0, outcome, 0,
                                    f"cat-{item % len(self.config.category_sensitivity)}", ratio))
            for i in range(first, len(out)):  # contribution of this shopper's later visits (pull-forward)
                later = sum(e.outcome.contribution for e in out[i + 1:])
                out[i] = replace(out[i], later_contribution=later)
        return out

    def log_randomized(self, rng_seed: int, actions: Sequence[str] | None = None) -> list[Exposure]:
        """A logging run with uniformly randomized exposure over ``actions`` (propensity recorded)."""
        names = list(actions or TREATMENTS)
        rng = np.random.default_rng(rng_seed + 7919)
        picks = rng.integers(0, len(names), size=self.n_shoppers * self.config.visits)
        counter = iter(range(picks.shape[0]))
        logged = self.run(lambda s, i, f: names[int(picks[next(counter)])], rng_seed)
        p = 1.0 / len(names)
        return [replace(e, propensity=p) for e in logged]
