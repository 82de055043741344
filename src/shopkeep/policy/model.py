"""Declarative merchant policy: rules parsed from JSON into frozen dataclasses, versioned by content.

A policy document is ``{"name": ..., "rules": [{"kind": ..., "id": ..., ...}, ...]}``. Every error is a
:class:`~shopkeep.errors.ValidationError` naming the rule index, the field and the value:

>>> parse_policy({"rules": [{"kind": "pin", "item_id": "a", "position": 0,
...                           "window": {"start": "2026-11-01", "end": "2026-13-01"}}]})
Traceback (most recent call last):
...
shopkeep.errors.ValidationError: rules[0].window.end='2026-13-01': not an ISO date or timestamp
>>> p = parse_policy({"name": "demo", "rules": [{"kind": "exclude", "select": {"brands": ["Acme"]}}]})
>>> p.rules[0].id, p.rules[0].select.brands, len(p.version.hash)
('exclude-0', ('Acme',), 16)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal, TypeAlias

from shopkeep.catalog.snapshot import normalize_value
from shopkeep.errors import ValidationError

__all__ = [
    "AvoidRule", "BoostRule", "ConsentRule", "DiversityRule", "ExcludeRule", "InventoryRule", "MapRule",
    "NewItemFloorRule", "NoveltyRule", "PinRule", "PolicySet", "PolicyVersion", "RegulatedRule",
    "RepurchaseRule", "Rule", "RuleFiring", "Selector", "Window", "parse_policy",
]

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    """``number``: monotonic, assigned by :class:`~shopkeep.policy.store.PolicyStore` (0 = unsaved);
    ``hash``: first 16 hex digits of the SHA-256 of the canonical rules document."""

    number: int
    hash: str


@dataclass(frozen=True, slots=True)
class RuleFiring:
    """One rule acting on one item: ``effect`` says what it did, in words."""

    rule_id: str
    kind: str
    item_id: str
    effect: str


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open time window ``[start_ms, end_ms)``; ``None`` = unbounded on that side."""

    start_ms: int | None = None
    end_ms: int | None = None

    def contains(self, now_ms: int) -> bool:
        """Whether ``now_ms`` falls inside the window."""
        return (self.start_ms is None or now_ms >= self.start_ms) and (self.end_ms is None or now_ms < self.end_ms)


@dataclass(frozen=True, slots=True)
class Selector:
    """Which items a rule touches: AND across the fields given, OR within one field.

    ``attributes``: (key, normalized values) pairs; categories match any level of the path."""

    item_ids: tuple[str, ...] = ()
    attributes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    categories: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()
    group_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ExcludeRule:
    """Hard: never show items matching ``select``."""

    id: str
    select: Selector
    kind: Literal["exclude"] = "exclude"


@dataclass(frozen=True, slots=True)
class RegulatedRule:
    """Hard: items of ``regulated_class`` (or matching ``select``) in a regulated region need
    ``age_verified`` (``min_age`` set) or are blocked there (``min_age`` None). ``regions`` None: each
    item's own ``regulated_regions``. ``unknown_region`` says what happens when the request has no region."""

    id: str
    regulated_class: str | None
    regions: tuple[str, ...] | None = None
    min_age: int | None = None
    unknown_region: Literal["restrict", "allow"] = "restrict"
    select: Selector | None = None
    kind: Literal["regulated"] = "regulated"


@dataclass(frozen=True, slots=True)
class InventoryRule:
    """Hard: hide items with no units at the shopper's store and none that can ship."""

    id: str
    kind: Literal["inventory"] = "inventory"


@dataclass(frozen=True, slots=True)
class MapRule:
    """MAP display: ``raise`` shows max(price, MAP); ``hide`` removes items priced under MAP.
    Without a MAP rule the engine behaves as ``raise``: a price under MAP is never displayed."""

    id: str
    mode: Literal["raise", "hide"] = "raise"
    kind: Literal["map"] = "map"


@dataclass(frozen=True, slots=True)
class RepurchaseRule:
    """Hard: hide purchased items (and their variant group) until their category's interval passes.

    ``categories``: lower-cased category name → days (None = never again); the deepest level of
    an item's path that is listed decides; unlisted items use ``default_days``."""

    id: str
    categories: tuple[tuple[str, float | None], ...] = ()
    default_days: float | None = None
    include_group: bool = True
    kind: Literal["repurchase"] = "repurchase"


@dataclass(frozen=True, slots=True)
class AvoidRule:
    """Hard, always on: stated ``Context.avoid`` values exclude items. ``aliases`` map a stated
    ``"key=value"`` to a selector (e.g. ``"ingredients=fragrance"`` → fragrance_free false)."""

    id: str
    aliases: tuple[tuple[str, Selector], ...] = ()
    kind: Literal["avoid"] = "avoid"


@dataclass(frozen=True, slots=True)
class ConsentRule:
    """Without personalization consent only ``non_personal_sources`` may contribute items."""

    id: str
    non_personal_sources: tuple[str, ...] = ("popular", "trending")
    kind: Literal["consent"] = "consent"


@dataclass(frozen=True, slots=True)
class PinRule:
    """Put ``item_id`` at 0-based ``position`` while ``window`` holds (never if it is ineligible)."""

    id: str
    item_id: str
    position: int
    window: Window = field(default_factory=Window)
    surfaces: tuple[str, ...] = ()
    kind: Literal["pin"] = "pin"


@dataclass(frozen=True, slots=True)
class BoostRule:
    """score × ``multiply`` + ``add`` for matching items while ``window`` holds and pacing allows:
    ``max_share`` of today's slates and ``max_impressions_per_day`` boosted impressions."""

    id: str
    select: Selector
    multiply: float = 1.0
    add: float = 0.0
    window: Window = field(default_factory=Window)
    surfaces: tuple[str, ...] = ()
    max_share: float | None = None
    max_impressions_per_day: int | None = None
    kind: Literal["boost"] = "boost"


@dataclass(frozen=True, slots=True)
class DiversityRule:
    """At most ``max_per`` items sharing a brand / category (path ``level``) / group in the top ``top_k``.
    Relaxed only when every remaining candidate would break a cap."""

    id: str
    by: Literal["brand", "category", "group"]
    max_per: int
    top_k: int
    level: int = -1
    kind: Literal["diversity"] = "diversity"


@dataclass(frozen=True, slots=True)
class NoveltyRule:
    """MMR in the top ``top_k``: pick argmax λ·relevance − (1 − λ)·max similarity to those above."""

    id: str
    lam: float
    top_k: int
    kind: Literal["novelty"] = "novelty"


@dataclass(frozen=True, slots=True)
class NewItemFloorRule:
    """Items younger than ``max_age_days`` get at least ``min_slots`` of the top ``top_k`` when
    eligible ones were ranked."""

    id: str
    max_age_days: float
    min_slots: int
    top_k: int
    kind: Literal["new_items"] = "new_items"


Rule: TypeAlias = (ExcludeRule | RegulatedRule | InventoryRule | MapRule | RepurchaseRule | AvoidRule
                   | ConsentRule | PinRule | BoostRule | DiversityRule | NoveltyRule | NewItemFloorRule)


@dataclass(frozen=True, slots=True)
class PolicySet:
    """A parsed policy: its rules in document order, its version and the canonical document."""

    name: str
    rules: tuple[Rule, ...]
    version: PolicyVersion
    document: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def of(self, cls: type[Any]) -> tuple[Any, ...]:
        """The rules of one class, in document order."""
        return tuple(r for r in self.rules if isinstance(r, cls))

    def check_references(self, known_items: Container[str]) -> None:
        """Raise ValidationError for a pin or selector naming an item id not in ``known_items``."""
        for i, rule in enumerate(self.rules):
            if isinstance(rule, PinRule) and rule.item_id not in known_items:
                raise ValidationError(f"rules[{i}].item_id", rule.item_id, "unknown item")
            sel = getattr(rule, "select", None)
            for j, item_id in enumerate(sel.item_ids if sel else ()):
                if item_id not in known_items:
                    raise ValidationError(f"rules[{i}].select.item_ids[{j}]", item_id, "unknown item")


# ---------------------------------------------------------------- parsing


class _P:
    """A field path under construction (``rules[3].window``) with typed readers."""

    def __init__(self, raw: Mapping[str, Any], path: str) -> None:
        if not isinstance(raw, Mapping):
            raise ValidationError(path, raw, "must be an object")
        self.raw, self.path = raw, path
        self.used: set[str] = set()

    def at(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def get(self, name: str, default: Any = None) -> Any:
        self.used.add(name)
        return self.raw.get(name, default)

    def done(self) -> None:
        for key in self.raw:
            if key not in self.used:
                raise ValidationError(self.at(str(key)), self.raw[key], "unknown field")

    def text(self, name: str, default: str | None = None) -> str:
        v = self.get(name, default)
        if not isinstance(v, str) or not v.strip():
            raise ValidationError(self.at(name), v, "must be a non-empty string")
        return v

    def texts(self, name: str) -> tuple[str, ...]:
        v = self.get(name, ())
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list | tuple) or not all(isinstance(s, str) and s.strip() for s in v):
            raise ValidationError(self.at(name), v, "must be a list of non-empty strings")
        return tuple(v)

    def number(self, name: str, default: float | None, *, lo: float | None = None, hi: float | None = None,
               integer: bool = False) -> Any:
        v = self.get(name, default)
        if v is None and default is None:
            return None
        ok_type = int if integer else int | float
        if isinstance(v, bool) or not isinstance(v, ok_type) or v != v:
            raise ValidationError(self.at(name), v, "must be an integer" if integer else "must be a number")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise ValidationError(self.at(name), v, f"must be between {lo} and {hi}" if hi is not None
                                  else f"must be >= {lo}")
        return v

    def choice(self, name: str, options: tuple[str, ...], default: str) -> Any:
        v = self.get(name, default)
        if v not in options:
            raise ValidationError(self.at(name), v, f"must be one of {', '.join(options)}")
        return v

    def flag(self, name: str, default: bool) -> bool:
        v = self.get(name, default)
        if not isinstance(v, bool):
            raise ValidationError(self.at(name), v, "must be true or false")
        return v


def _instant(raw: Any, path: str) -> int:
    if not isinstance(raw, str):
        raise ValidationError(path, raw, "not an ISO date or timestamp")
    text = raw.strip()
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)
        ts = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise ValidationError(path, raw, "not an ISO date or timestamp") from None
    if ts.tzinfo is None:
        raise ValidationError(path, raw, "a timestamp must carry a UTC offset (e.g. a trailing Z)")
    return int(ts.timestamp() * 1000)


def _window(p: _P) -> Window:
    raw = p.get("window")
    if raw is None:
        return Window()
    w = _P(raw, p.at("window"))
    start, end = w.get("start"), w.get("end")
    w.done()
    s = None if start is None else _instant(start, w.at("start"))
    e = None if end is None else _instant(end, w.at("end"))
    if s is not None and e is not None and e <= s:
        raise ValidationError(w.at("end"), end, "must be after window.start")
    return Window(s, e)


def _selector(raw: Any, path: str) -> Selector:
    p = _P(raw, path)
    attrs_raw = p.get("attributes", {})
    if not isinstance(attrs_raw, Mapping):
        raise ValidationError(p.at("attributes"), attrs_raw, "must be an object {key: value or [values]}")
    attrs = []
    for key, value in sorted(attrs_raw.items()):
        values = value if isinstance(value, list | tuple) else [value]
        if not values or not all(isinstance(v, str | int | float | bool) for v in values):
            raise ValidationError(p.at(f"attributes.{key}"), value, "must be a string, number, boolean or a list")
        attrs.append((str(key), tuple(normalize_value(v) for v in values)))
    sel = Selector(item_ids=p.texts("item_ids"), attributes=tuple(attrs), categories=p.texts("categories"),
                   brands=p.texts("brands"), group_ids=p.texts("group_ids"))
    p.done()
    if sel == Selector():
        raise ValidationError(path, raw, "must name item_ids, attributes, categories, brands or group_ids")
    return sel


def _categories(p: _P) -> tuple[tuple[str, float | None], ...]:
    raw = p.get("categories", {})
    if not isinstance(raw, Mapping):
        raise ValidationError(p.at("categories"), raw, "must be an object {category: days or null}")
    out = []
    for name, days in raw.items():
        if days is not None and (isinstance(days, bool) or not isinstance(days, int | float) or days < 0):
            raise ValidationError(p.at(f"categories.{name}"), days, "must be a number of days >= 0 or null")
        out.append((str(name).strip().lower(), None if days is None else float(days)))
    return tuple(out)


def _aliases(p: _P) -> tuple[tuple[str, Selector], ...]:
    raw = p.get("aliases", {})
    if not isinstance(raw, Mapping):
        raise ValidationError(p.at("aliases"), raw, 'must be an object {"key=value": selector}')
    out = []
    for name, sel in raw.items():
        if "=" not in str(name):
            raise ValidationError(p.at("aliases"), name, 'alias names are "key=value"')
        key, _, value = str(name).partition("=")
        out.append((f"{key.strip().lower()}={normalize_value(value)}", _selector(sel, p.at(f"aliases.{name}"))))
    return tuple(out)


def _regulated(p: _P, rid: str) -> RegulatedRule:
    regions = p.get("regions")
    if regions is not None:
        p.used.discard("regions")
        regions = p.texts("regions")
    cls = None if p.raw.get("class") is None and p.raw.get("select") is not None else p.text("class")
    sel = None if p.raw.get("select") is None else _selector(p.get("select"), p.at("select"))
    if sel is not None and cls is None and regions is None:
        raise ValidationError(p.at("regions"), None, "is required when a regulated rule has no class")
    return RegulatedRule(rid, cls, regions, p.number("min_age", None, lo=0, integer=True),
                         p.choice("unknown_region", ("restrict", "allow"), "restrict"), sel)


def _boost(p: _P, rid: str) -> BoostRule:
    rule = BoostRule(rid, _selector(p.get("select"), p.at("select")), float(p.number("multiply", 1.0, lo=0)),
                     float(p.number("add", 0.0)), _window(p), p.texts("surfaces"),
                     p.number("max_share", None, lo=0, hi=1), p.number("max_impressions_per_day", None, lo=0,
                                                                        integer=True))
    if rule.multiply == 1.0 and rule.add == 0.0:
        raise ValidationError(p.at("multiply"), rule.multiply, "a boost needs multiply != 1 or add != 0")
    return rule


_BUILDERS: dict[str, Callable[[_P, str], Rule]] = {
    "exclude": lambda p, rid: ExcludeRule(rid, _selector(p.get("select"), p.at("select"))),
    "regulated": _regulated,
    "inventory": lambda p, rid: InventoryRule(rid),
    "map": lambda p, rid: MapRule(rid, p.choice("mode", ("raise", "hide"), "raise")),
    "repurchase": lambda p, rid: RepurchaseRule(rid, _categories(p), p.number("default_days", None, lo=0),
                                                p.flag("include_group", True)),
    "avoid": lambda p, rid: AvoidRule(rid, _aliases(p)),
    "consent": lambda p, rid: ConsentRule(rid, p.texts("non_personal_sources")  # absent: the default pair
                                          if "non_personal_sources" in p.raw else ("popular", "trending")),
    "pin": lambda p, rid: PinRule(rid, p.text("item_id"), p.number("position", None, lo=0, integer=True),
                                  _window(p), p.texts("surfaces")),
    "boost": _boost,
    "diversity": lambda p, rid: DiversityRule(rid, p.choice("by", ("brand", "category", "group"), "brand"),
                                              p.number("max_per", None, lo=1, integer=True),
                                              p.number("top_k", None, lo=1, integer=True),
                                              p.number("level", -1, integer=True)),
    "novelty": lambda p, rid: NoveltyRule(rid, float(p.number("lambda", None, lo=0, hi=1)),
                                          p.number("top_k", None, lo=1, integer=True)),
    "new_items": lambda p, rid: NewItemFloorRule(rid, float(p.number("max_age_days", None, lo=0)),
                                                 p.number("min_slots", None, lo=1, integer=True),
                                                 p.number("top_k", None, lo=1, integer=True)),
}
_REQUIRED = {"pin": ("item_id", "position"), "diversity": ("max_per", "top_k"), "novelty": ("lambda", "top_k"),
             "new_items": ("max_age_days", "min_slots", "top_k"), "exclude": ("select",), "boost": ("select",),
             }


def _rule(raw: Any, i: int) -> Rule:
    p = _P(raw, f"rules[{i}]")
    kind = p.get("kind")
    if kind not in _BUILDERS:
        raise ValidationError(p.at("kind"), kind, f"must be one of {', '.join(sorted(_BUILDERS))}")
    for name in _REQUIRED.get(kind, ()):
        if p.raw.get(name) is None:
            raise ValidationError(p.at(name), None, f"is required for a {kind} rule")
    rid = p.text("id", f"{kind}-{i}")
    rule = _BUILDERS[kind](p, rid)
    p.done()
    return rule


def canonical(document: Mapping[str, Any]) -> str:
    """The canonical JSON text of a policy document (sorted keys, no spaces): what the hash covers."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def parse_policy(raw: Mapping[str, Any] | str, *, number: int = 0,
                 known_items: Container[str] | None = None) -> PolicySet:
    """Validate a policy document (a mapping or JSON text) into a :class:`PolicySet`.

    ``known_items``: when given, pins and selectors may only name these item ids. ``number`` is the
    version number to stamp (the store assigns it)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValidationError("policy", raw, f"not valid JSON (line {exc.lineno}: {exc.msg})") from None
    top = _P(raw, "")  # type: ignore[arg-type]
    name = top.text("name", "policy")
    rules_raw = top.get("rules", [])
    top.get("version")  # informational on input; the store assigns versions
    top.get("description")
    top.done()
    if not isinstance(rules_raw, list):
        raise ValidationError("rules", rules_raw, "must be a list of rules")
    rules = tuple(_rule(r, i) for i, r in enumerate(rules_raw))
    seen: dict[str, int] = {}
    for i, rule in enumerate(rules):
        if rule.id in seen:
            raise ValidationError(f"rules[{i}].id", rule.id, f"duplicates rules[{seen[rule.id]}].id")
        seen[rule.id] = i
    doc = {"name": name, "description": top.raw.get("description", ""), "rules": rules_raw}
    digest = hashlib.sha256(canonical({"name": name, "rules": rules_raw}).encode()).hexdigest()[:16]
    policy = PolicySet(name, rules, PolicyVersion(number, digest), doc)
    if known_items is not None:
        policy.check_references(known_items)
    return policy
