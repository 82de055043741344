"""Returns-aware fit: which size to suggest to a shopper, learned from ``too_small`` / ``too_large`` returns.

Every purchase of a sized item (its ``size`` attribute on a letter ladder ``XXS … 3XL`` or a number)
is one observation ``d = (bought size − the shopper's usual size) + y`` with ``y = +1`` when it came
back too small, ``−1`` too large and ``0`` otherwise: the size steps the shopper *should have* added
to the usual size. Offsets are shrunk level by level (empirical-Bayes means with ``prior_strength``
pseudo-observations): global → brand → product (``group_id``) → the shopper's own residual (all the
shopper's purchases on that size ladder) → the shopper × brand residual. The suggested size is the
usual one moved ``steps`` ladder steps, ``steps = sign(offset) · min(max_steps, ⌊|offset| / step_at⌋)``
(a return is a noisy, thinned signal of a misfit, so ``step_at`` is below 0.5; the benchmark chooses
it on a validation store), and the sibling variant (same ``group_id``) nearest that size is named.

>>> from datetime import UTC, datetime
>>> from shopkeep.types import Event, EventType, Item, ReturnReason
>>> t = datetime(2026, 1, 1, tzinfo=UTC)
>>> items = {f"b-{n}": Item(f"b-{n}", f"Boot {n}", group_id="boot", brand="Ridge",
...                         attributes={"size": str(n)}) for n in (8, 9, 10)}
>>> evs = []
>>> for u in range(6):
...     evs.append(Event(f"p{u}", EventType.PURCHASE, t, user_id=f"u{u}", item_id="b-9", order_id=f"o{u}",
...                      quantity=1))
...     evs.append(Event(f"r{u}", EventType.RETURN, t, user_id=f"u{u}", item_id="b-9", order_id=f"o{u}",
...                      reason=ReturnReason.TOO_SMALL))
>>> model = FitModel(step_at=0.5).fit(evs, items)
>>> advice = model.advise("new-shopper", "b-9", usual="9")
>>> advice.usual_size, advice.suggested_size, advice.suggested_item_id
('9', '10', 'b-10')
>>> advice.note
'Ridge runs small (6 of 6 bought returned as too small): your usual 9 → 10'
"""

from __future__ import annotations

import itertools
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from shopkeep.errors import NotFittedError, ValidationError
from shopkeep.types import Event, EventType, Item, ReturnReason

__all__ = ["LETTER_SIZES", "FitAdvice", "FitModel", "size_label", "size_position"]

#: The letter size ladder (positions 0 … 7).
LETTER_SIZES = ("XXS", "XS", "S", "M", "L", "XL", "XXL", "3XL")
_LETTER = {s: i for i, s in enumerate(LETTER_SIZES)}
_Y = {ReturnReason.TOO_SMALL: 1, ReturnReason.TOO_LARGE: -1}


def size_position(value: object) -> tuple[str, float] | None:
    """``(ladder, position)`` of a size attribute: ``("letter", index)`` or ``("numeric", number)``.

    >>> size_position("M"), size_position("9.5"), size_position("one size")
    (('letter', 3.0), ('numeric', 9.5), None)
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return ("numeric", float(value)) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    text = value.strip().upper()
    if text in _LETTER:
        return "letter", float(_LETTER[text])
    try:
        number = float(text)
    except ValueError:
        return None
    return ("numeric", number) if math.isfinite(number) else None


def size_label(ladder: str, position: float) -> str:
    """The size as shown: a letter, or the number without a trailing ``.0``.

    >>> size_label("letter", 3.0), size_label("numeric", 9.5), size_label("numeric", 10.0)
    ('M', '9.5', '10')
    """
    if ladder == "letter":
        return LETTER_SIZES[min(max(round(position), 0), len(LETTER_SIZES) - 1)]
    return f"{position:g}"


@dataclass(frozen=True, slots=True)
class FitAdvice:
    """The size suggested to ``shopper`` for ``item_id``'s product, with the evidence behind it.

    ``offset`` is the estimated size steps to add to the usual size; ``level`` the deepest level with
    data (``shopper_brand``, ``shopper``, ``product``, ``brand``, ``global``); ``evidence`` the counts.
    ``suggested_item_id`` is the sibling variant in the suggested size (``None``: not in the catalog).
    """

    shopper: str
    item_id: str
    brand: str | None
    usual_size: str
    suggested_size: str
    suggested_item_id: str | None
    offset: float
    steps: int
    level: str
    evidence: Mapping[str, int] = field(default_factory=dict)
    note: str = ""

    def to_dict(self) -> dict[str, object]:
        """The wire form (snake_case JSON)."""
        return {"item_id": self.item_id, "brand": self.brand, "usual_size": self.usual_size,
                "suggested_size": self.suggested_size, "suggested_item_id": self.suggested_item_id,
                "offset": round(self.offset, 4), "steps": self.steps, "level": self.level,
                "evidence": dict(self.evidence), "note": self.note}


@dataclass(slots=True)
class _Obs:
    key: str
    brand: str
    group: str
    ladder: str
    position: float
    y: int = 0


@dataclass(frozen=True, slots=True)
class _SizedItem:
    brand: str
    group: str
    ladder: str
    position: float


def _implied(o: _Obs, usual: float) -> float | None:
    """The size steps ``o`` says the shopper should add to ``usual``; ``None`` when it says nothing clear.

    A purchase in the usual size says ``y``. One in another size says something only when it came back
    on the far side (bigger than usual and still too small): a kept off-size item is often a misfit
    that was not returned, and a return toward the usual size only confirms it.
    """
    diff = o.position - usual
    if abs(diff) < 1e-9:
        return float(o.y)
    if o.y and o.y * diff > 0:
        return diff + o.y
    return None


class FitModel:
    """Per shopper × brand (and product) size offsets from return reasons, shrunk toward brand and global.

    ``fit(events, items)`` reads purchases and returns; ``update(events)`` folds new ones in (write
    path); ``advise(shopper, item_id)`` answers a :class:`FitAdvice` (read path).
    """

    def __init__(self, *, prior_strength: float = 8.0, shopper_prior: float = 6.0, step_at: float = 0.2,
                 max_steps: int = 2, refresh_s: float = 0.0) -> None:
        self.prior_strength = prior_strength
        self.shopper_prior = shopper_prior
        self.step_at = step_at
        self.max_steps = max_steps
        self.refresh_s = refresh_s

    # -- fitting --------------------------------------------------------------------------------
    def fit(self, events: Iterable[Event], items: Mapping[str, Item]) -> FitModel:
        """Index the sized ``items`` and read every purchase and return of ``events``."""
        for name in ("prior_strength", "shopper_prior", "step_at"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e6:
                raise ValidationError(name, value, "must be a positive number")
        if isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int) or not 0 <= self.max_steps <= 5:
            raise ValidationError("max_steps", self.max_steps, "must be an integer in [0, 5]")
        self.items_: dict[str, _SizedItem] = {}
        self.groups_: dict[str, list[tuple[float, str]]] = defaultdict(list)
        self.add_items(items.values())
        self.obs_: dict[tuple[str, str], _Obs] = {}
        self.links_: dict[str, str] = {}
        self.stated_: dict[tuple[str, str], float] = {}
        self._dirty, self._computed_at = True, 0.0
        self.update(events)
        return self

    def add_items(self, items: Iterable[Item]) -> None:
        """Index (new or changed) sized items: brand, product group, size ladder and position."""
        for it in items:
            pos = size_position(it.attributes.get("size"))
            if pos is None or not it.active:
                continue
            group = it.group_id or it.item_id
            old = self.items_.get(it.item_id)
            if old is not None:
                self.groups_[old.group] = [g for g in self.groups_[old.group] if g[1] != it.item_id]
            self.items_[it.item_id] = _SizedItem(it.brand or "", group, pos[0], pos[1])
            self.groups_[group].append((pos[1], it.item_id))
            self.groups_[group].sort()

    def update(self, events: Iterable[Event]) -> int:
        """Fold purchases and returns of sized items in; returns how many observations changed."""
        self._check()
        changed = 0
        for e in events:
            if e.user_id and e.anonymous_id:
                self.links_.setdefault(e.anonymous_id, e.user_id)
            if e.item_id is None or e.item_id not in self.items_:
                continue
            if e.type is EventType.PURCHASE:
                ref = (e.order_id or e.event_id, e.item_id)
                if ref not in self.obs_:
                    it = self.items_[e.item_id]
                    self.obs_[ref] = _Obs(self.shopper_key(e.user_id, e.anonymous_id), it.brand, it.group,
                                          it.ladder, it.position)
                    changed += 1
            elif e.type is EventType.RETURN and e.reason in _Y:
                obs = self.obs_.get((e.order_id or "", e.item_id))
                if obs is None:  # a return of a purchase we never saw: it still says the size was wrong
                    it = self.items_[e.item_id]
                    obs = _Obs(self.shopper_key(e.user_id, e.anonymous_id), it.brand, it.group, it.ladder,
                               it.position)
                    self.obs_[(e.order_id or e.event_id, e.item_id)] = obs
                obs.y = _Y[e.reason]
                changed += 1
        self._dirty = self._dirty or changed > 0
        return changed

    def state_usual_size(self, shopper: str, size: str) -> None:
        """Record a shopper's stated usual size (zero-party data) on its ladder."""
        self._check()
        pos = size_position(size)
        if pos is None:
            raise ValidationError("size", size, "is not a size (a letter XXS…3XL or a number)")
        self.stated_[(shopper, pos[0])] = pos[1]
        self._dirty = True

    def shopper_key(self, user_id: str | None, anonymous_id: str | None) -> str:
        """The shopper an event belongs to: the user, the user a login linked the anonymous id to, or it."""
        if user_id:
            return user_id
        return self.links_.get(anonymous_id or "", anonymous_id or "")

    def _check(self) -> None:
        if not hasattr(self, "items_"):
            raise NotFittedError("FitModel is not fitted: call fit(events, items) first")

    # -- estimates ------------------------------------------------------------------------------
    def _recompute(self) -> None:
        if not self._dirty or (self.refresh_s and time.monotonic() - self._computed_at < self.refresh_s):
            return
        by_shopper: dict[tuple[str, str], list[_Obs]] = defaultdict(list)
        for o in self.obs_.values():
            by_shopper[(o.key, o.ladder)].append(o)
        self._usual = {k: self._infer_usual(k, v) for k, v in by_shopper.items()}
        self._by_shopper = by_shopper
        sums: dict[tuple[str, ...], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
        for (key, ladder), rows in by_shopper.items():
            usual = self._usual[(key, ladder)]
            for o in rows:
                d = _implied(o, usual)
                if d is None:
                    continue
                for level in (("global", ladder), ("brand", ladder, o.brand), ("product", o.group)):
                    acc = sums[level]
                    acc[0] += d
                    acc[1] += 1
                    acc[2] += o.y > 0
                    acc[3] += o.y < 0
        self._sums = sums
        self._dirty, self._computed_at = False, time.monotonic()

    def _infer_usual(self, key: tuple[str, str], rows: list[_Obs]) -> float:
        stated = self.stated_.get(key)
        if stated is not None:
            return stated
        kept = sorted(o.position for o in rows if o.y == 0) or sorted(o.position for o in rows)
        return kept[len(kept) // 2]

    def usual_size(self, shopper: str, ladder: str) -> float | None:
        """The shopper's usual size on ``ladder``: stated, else the median size kept (``None``: unknown)."""
        self._check()
        stated = self.stated_.get((shopper, ladder))
        if stated is not None:
            return stated
        self._recompute()
        return self._usual.get((shopper, ladder))

    def _shrunk(self, level: tuple[str, ...], prior: float) -> tuple[float, int]:
        acc = self._sums.get(level)
        if acc is None:
            return prior, 0
        return (acc[0] + self.prior_strength * prior) / (acc[1] + self.prior_strength), int(acc[1])

    def _base(self, ladder: str, brand: str, group: str) -> tuple[float, float, float]:
        g, _ = self._shrunk(("global", ladder), 0.0)
        b, _ = self._shrunk(("brand", ladder, brand), g)
        p, _ = self._shrunk(("product", group), b)
        return g, b, p

    def offset(self, shopper: str, item_id: str, *, usual: float | None = None) -> tuple[float, str, dict[str, int]]:
        """``(offset in size steps, level, evidence counts)`` of ``shopper`` for ``item_id``'s product."""
        self._check()
        it = self.items_.get(item_id)
        if it is None:
            raise ValidationError("item_id", item_id, "is not a sized item the fit model knows")
        self._recompute()
        p = self._base(it.ladder, it.brand, it.group)[2]
        rows = self._by_shopper.get((shopper, it.ladder), [])
        ref = usual if usual is not None else self._usual.get((shopper, it.ladder))
        resid, n_s, mine, mine_y = 0.0, 0, 0.0, [0, 0, 0]
        if rows and ref is not None:
            res = [(o, d - self._base(o.ladder, o.brand, o.group)[2]) for o in rows
                   if (d := _implied(o, ref)) is not None]
            resid = sum(r for _, r in res) / (len(res) + self.shopper_prior)
            same = [(o, r - resid) for o, r in res if o.brand == it.brand]
            mine = sum(r for _, r in same) / (len(same) + self.shopper_prior) if same else 0.0
            n_s, mine_y = len(res), [len(same), sum(o.y > 0 for o, _ in same), sum(o.y < 0 for o, _ in same)]
        brand_acc = self._sums.get(("brand", it.ladder, it.brand), [0.0, 0.0, 0.0, 0.0])
        product_n = int(self._sums.get(("product", it.group), [0.0, 0.0])[1])
        evidence = {"brand_bought": int(brand_acc[1]), "brand_too_small": int(brand_acc[2]),
                    "brand_too_large": int(brand_acc[3]), "product_bought": product_n, "shopper_bought": n_s,
                    "shopper_brand_bought": mine_y[0], "shopper_brand_too_small": mine_y[1],
                    "shopper_brand_too_large": mine_y[2]}
        level = ("shopper_brand" if mine_y[0] else "shopper" if n_s else "product" if product_n else
                 "brand" if brand_acc[1] else "global")
        return p + resid + mine, level, evidence

    def steps_for(self, offset: float) -> int:
        """Ladder steps to move for an estimated ``offset`` (0 inside ``±step_at``)."""
        n = min(self.max_steps, int(abs(offset) / self.step_at))
        return n if offset > 0 else -n

    def advise(self, shopper: str, item_id: str, *, usual: str | None = None) -> FitAdvice | None:
        """The size to suggest to ``shopper`` for ``item_id``'s product; ``None`` when not sized or no usual size."""
        self._check()
        it = self.items_.get(item_id)
        if it is None:
            return None
        stated = size_position(usual) if usual is not None else None
        ref = stated[1] if stated is not None and stated[0] == it.ladder else self.usual_size(shopper, it.ladder)
        if ref is None:
            return None
        off, level, evidence = self.offset(shopper, item_id, usual=ref)
        steps = self.steps_for(off)
        siblings = self.groups_.get(it.group, [])
        spacing = min((b[0] - a[0] for a, b in itertools.pairwise(siblings) if b[0] > a[0]),
                      default=1.0)
        target = ref + steps * spacing
        # the nearest size the product comes in, between the usual size and the target (never beyond)
        lo, hi = min(ref, target) - spacing / 2, max(ref, target) + spacing / 2
        pick = min((s for s in siblings if lo <= s[0] <= hi), key=lambda s: (abs(s[0] - target), s[0]), default=None)
        suggested = pick[1] if pick is not None else None
        if pick is not None and abs(pick[0] - target) > 1e-9 and steps:
            target = pick[0]
            steps = round((target - ref) / spacing)
        return FitAdvice(shopper, item_id, it.brand or None, size_label(it.ladder, ref), size_label(it.ladder, target),
                         suggested, off, steps, level, evidence, self._note(it, ref, target, steps, evidence))

    def _note(self, it: _SizedItem, ref: float, target: float, steps: int, ev: Mapping[str, int]) -> str:
        """The plain-language fit note (quotes the return counts it rests on)."""
        usual, new = size_label(it.ladder, ref), size_label(it.ladder, target)
        parts = []
        small, large = ev["brand_too_small"], ev["brand_too_large"]
        if steps and (small - large) * steps > 0:
            word, n = ("small", small) if steps > 0 else ("large", large)
            parts.append(f"{it.brand or 'this brand'} runs {word} ({n} of {ev['brand_bought']} bought returned "
                         f"as too {word})")
        mine = ev["shopper_brand_too_small"] if steps > 0 else ev["shopper_brand_too_large"]
        if steps and mine:
            parts.append(f"you returned {mine} of {ev['shopper_brand_bought']} as too "
                         f"{'small' if steps > 0 else 'large'}")
        if steps == 0:
            return f"your usual size {usual} fits this brand (from {ev['brand_bought']} purchases and their returns)"
        if not parts:
            parts.append(f"your past returns suggest {'a size up' if steps > 0 else 'a size down'}")
        return "; ".join(parts) + f": your usual {usual} → {new}"
