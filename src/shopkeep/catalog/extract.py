"""Attribute extraction from titles, descriptions and ingredient lists, as *proposals* with a confidence.

Nothing is written by :func:`propose`: it answers :class:`Proposal` objects (deterministic ids) for
attributes an item lacks. :func:`apply_proposals` re-derives the proposals of the items named by the
ids and upserts only those, so an approval can never apply a stale or invented value.

Extractors (``source`` says which text a value came from):

* ``fragrance_free`` from an *known* ingredient list (an attribute whose key contains ``ingredients``
  or is ``inci``): any of fragrance/parfum/perfume → False (0.95); none → True (0.9), or 0.55 when
  listed fragrance allergens (linalool, limonene, ...) suggest an essential-oil scent. Placeholder
  texts ("Visit the … boutique", "No Info", "#NAME?", a lone footnote) are *unknown*: no proposal.
  Without a list, "fragrance-free"/"unscented" in the title or description → True (0.7).
* ``spf`` from "SPF 30"/"SPF30" (title 0.95, description 0.7), 1–100 only.
* ``size_ml`` from "50 ml" (0.9), "1.7 fl oz" (0.85) or "1.7 oz" (0.6, may be a weight) → ml.
* ``skin_type`` from "for dry skin", "dry to combination skin", "all skin types" (all five), ...
* ``vegan`` / ``cruelty_free`` from claims in the title or description (0.8); ``vegan`` False (0.7)
  from animal-derived ingredients (beeswax, carmine, lanolin, honey, ...).

>>> from shopkeep.types import Item
>>> it = Item("a", "Day Cream SPF 30 for Dry Skin, 1.7 fl oz", attributes={"ingredients": "Water, Parfum."})
>>> [(p.field, p.value, p.confidence) for p in extract_item(it)]
[('fragrance_free', False, 0.95), ('spf', 30, 0.95), ('size_ml', 50.3, 0.85), ('skin_type', ('dry',), 0.75)]
>>> extract_item(Item("b", "Mask", attributes={"ingredients": "Visit the Dior boutique"}))
[]
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from shopkeep.catalog.repository import CatalogRepository
from shopkeep.errors import NotFoundError, ValidationError
from shopkeep.types import AttributeValue, Item

__all__ = [
    "FRAGRANCE_TERMS",
    "SKIN_TYPES",
    "ApplyResult",
    "Proposal",
    "apply_proposals",
    "extract_item",
    "ingredient_text",
    "ingredients_known",
    "propose",
]

FRAGRANCE_TERMS = ("fragrance", "parfum", "perfume")
#: EU-labelled fragrance allergens: listed without "fragrance" they usually mean essential oils.
FRAGRANCE_ALLERGENS = ("linalool", "limonene", "citronellol", "geraniol", "eugenol", "coumarin", "citral",
                       "farnesol", "hexyl cinnamal", "benzyl salicylate", "isoeugenol", "cinnamal")
SKIN_TYPES = ("combination", "dry", "normal", "oily", "sensitive")
_ANIMAL = re.compile(r"\b(beeswax|cera alba|carmine|ci 75470|lanolin|honey|mel extract|snail|royal jelly|"
                     r"propolis|tallow|shellac|guanine)\b", re.IGNORECASE)
_PLACEHOLDER = re.compile(
    r"visit the .* boutique|^\s*no info|^\s*#name|not available|^\s*n/?a\s*$|^\s*unknown|^\s*none\s*$"
    r"|subject to change", re.IGNORECASE)
_SPF = re.compile(r"\bspf\s*(\d{1,3})\b", re.IGNORECASE)
_ML = re.compile(r"(?<![\d.])(\d{1,5}(?:\.\d+)?)\s*ml\b", re.IGNORECASE)
_FLOZ = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d+)?)\s*fl\.?\s*oz\b", re.IGNORECASE)
_OZ = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d+)?)\s*oz\b", re.IGNORECASE)
_ML_PER_OZ = 29.5735
_TYPE = r"(?:combination|combo|dry|normal|oily|sensitive)"
_SKIN = re.compile(rf"\b({_TYPE}(?:\s*(?:,|/|and|or|to|&|-)\s*{_TYPE})*)(?:\s*-\s*|\s+)(?:to\s+\w+\s+)?skin",
                   re.IGNORECASE)
_ALL_SKIN = re.compile(r"\ball\s+skin(?:\s*types?)?\b|\bevery\s+skin\s+type|\bany\s+skin\s+type", re.IGNORECASE)
_FF_CLAIM = re.compile(r"\bfragrance[\s-]*free\b|\bunscented\b|\bwithout (?:added )?fragrance\b"
                       r"|\bno (?:added )?fragrance\b", re.IGNORECASE)
_VEGAN = re.compile(r"(?<!non-)(?<!non )(?<!not )\bvegan\b", re.IGNORECASE)
_CRUELTY = re.compile(r"\bcruelty[\s-]*free\b|\bleaping bunny\b|\bnot tested on animals\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Proposal:
    """One extracted attribute value waiting for approval."""

    proposal_id: str
    item_id: str
    field: str
    value: AttributeValue
    confidence: float
    source: str
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form (list values as lists)."""
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {"proposal_id": self.proposal_id, "item_id": self.item_id, "field": self.field, "value": value,
                "confidence": self.confidence, "source": self.source, "evidence": self.evidence}


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What an approval wrote: the applied proposals and the item ids that changed."""

    applied: tuple[Proposal, ...]
    item_ids: tuple[str, ...]


def ingredients_known(text: str) -> bool:
    """Whether an ingredient text is an actual list (not a placeholder or a lone footnote).

    >>> [ingredients_known(t) for t in ("Water, Glycerin.", "No Info", "*Certified Organic", "Squalane.")]
    [True, False, False, True]
    """
    stripped = text.strip()
    if not re.search(r"[A-Za-z]", stripped) or _PLACEHOLDER.search(stripped):
        return False
    return not (stripped.startswith(("*", "-")) and "," not in stripped)


def ingredient_text(item: Item) -> str | None:
    """The item's ingredient list attribute (any key containing ``ingredients``, or ``inci``), if any."""
    for key, value in item.attributes.items():
        name = key.lower()
        if ("ingredients" in name or name == "inci") and isinstance(value, str) and len(value) > 3:
            return value
    return None


def _pid(item_id: str, field: str, value: AttributeValue) -> str:
    digest = hashlib.sha256(repr((item_id, field, value)).encode()).hexdigest()[:10]
    return f"{field}@{item_id}#{digest}"


def _snippet(text: str, m: re.Match[str]) -> str:
    return text[max(0, m.start() - 20):m.end() + 20].strip()


Found = tuple[str, AttributeValue, float, str, str]  # field, value, confidence, source, evidence


def _fragrance(item: Item, texts: Sequence[tuple[str, str]]) -> list[Found]:
    ing = ingredient_text(item)
    if ing is not None:
        if not ingredients_known(ing):
            return []
        low = ing.lower()
        hit = next((t for t in FRAGRANCE_TERMS if t in low), None)
        if hit is not None:
            return [("fragrance_free", False, 0.95, "ingredients", f"lists {hit!r}")]
        allergens = [a for a in FRAGRANCE_ALLERGENS if re.search(rf"\b{a}\b", low)]
        if allergens:
            return [("fragrance_free", True, 0.55, "ingredients", f"no fragrance listed; allergens {allergens}")]
        return [("fragrance_free", True, 0.9, "ingredients", "no fragrance/parfum/perfume in a known list")]
    for source, text in texts:
        m = _FF_CLAIM.search(text)
        if m:
            return [("fragrance_free", True, 0.7, source, _snippet(text, m))]
    return []


def _spf(texts: Sequence[tuple[str, str]]) -> list[Found]:
    for source, text in texts:
        for m in _SPF.finditer(text):
            value = int(m.group(1))
            if 1 <= value <= 100:
                return [("spf", value, 0.95 if source == "title" else 0.7, source, _snippet(text, m))]
    return []


def _size(title: str) -> list[Found]:
    for pattern, factor, conf in ((_ML, 1.0, 0.9), (_FLOZ, _ML_PER_OZ, 0.85), (_OZ, _ML_PER_OZ, 0.6)):
        m = pattern.search(title)
        if m:
            ml = round(float(m.group(1)) * factor, 1)
            if ml > 0:
                return [("size_ml", int(ml) if ml == int(ml) else ml, conf, "title", _snippet(title, m))]
    return []


def _skin(texts: Sequence[tuple[str, str]]) -> list[Found]:
    for source, text in texts:
        m = _ALL_SKIN.search(text)
        if m:
            return [("skin_type", SKIN_TYPES, 0.7, source, _snippet(text, m))]
        found: set[str] = set()
        evidence = ""
        for m in _SKIN.finditer(text):
            words = re.findall(_TYPE, m.group(1), re.IGNORECASE)
            found.update("combination" if w.lower() == "combo" else w.lower() for w in words)
            evidence = evidence or _snippet(text, m)
        if found:
            return [("skin_type", tuple(sorted(found)), 0.75 if source == "title" else 0.65, source, evidence)]
    return []


def _claims(item: Item, texts: Sequence[tuple[str, str]]) -> list[Found]:
    out: list[Found] = []
    for source, text in texts:
        m = _VEGAN.search(text)
        if m and not any(f[0] == "vegan" for f in out):
            out.append(("vegan", True, 0.8, source, _snippet(text, m)))
        m = _CRUELTY.search(text)
        if m and not any(f[0] == "cruelty_free" for f in out):
            out.append(("cruelty_free", True, 0.8, source, _snippet(text, m)))
    ing = ingredient_text(item)
    if ing is not None and ingredients_known(ing) and not any(f[0] == "vegan" for f in out):
        m = _ANIMAL.search(ing)
        if m:
            out.append(("vegan", False, 0.7, "ingredients", f"lists {m.group(0)!r}"))
    return out


def extract_item(item: Item) -> list[Proposal]:
    """Proposals for the attributes ``item`` lacks (highest-confidence value per field)."""
    if not isinstance(item, Item):
        raise ValidationError("item", item, "must be an Item")
    texts = [("title", item.title)] + ([("description", item.description)] if item.description else [])
    found = [*_fragrance(item, texts), *_spf(texts), *_size(item.title), *_skin(texts), *_claims(item, texts)]
    own = {k.lower() for k in item.attributes}
    return [Proposal(_pid(item.item_id, f, v), item.item_id, f, v, c, s, e)
            for f, v, c, s, e in found if f not in own]


def propose(items: Iterable[Item], *, min_confidence: float = 0.0) -> list[Proposal]:
    """Every proposal for ``items`` at or above ``min_confidence`` (nothing is written)."""
    if not 0.0 <= min_confidence <= 1.0:
        raise ValidationError("min_confidence", min_confidence, "must be between 0 and 1")
    return [p for it in items for p in extract_item(it) if p.confidence >= min_confidence]


def _item_of(proposal_id: str) -> str:
    if not isinstance(proposal_id, str) or "@" not in proposal_id or "#" not in proposal_id:
        raise ValidationError("ids", proposal_id, "is not a proposal id (field@item_id#hash)")
    return proposal_id.split("@", 1)[1].rsplit("#", 1)[0]


def apply_proposals(repo: CatalogRepository, ids: Sequence[str], *,
                    upsert: Callable[[Sequence[Item]], object] | None = None) -> ApplyResult:
    """Write the approved proposals: each id must still be a current proposal of its (stored) item,
    else NotFoundError names the ids and nothing is written. ``upsert`` defaults to
    ``repo.upsert_many`` (the engine passes its live ``upsert_items``)."""
    if isinstance(ids, str) or not ids:
        raise ValidationError("ids", ids, "must be a non-empty list of proposal ids")
    wanted = list(dict.fromkeys(ids))
    items = repo.get_many(list(dict.fromkeys(_item_of(i) for i in wanted)))
    current = {p.proposal_id: p for it in items.values() for p in extract_item(it)}
    stale = [i for i in wanted if i not in current]
    if stale:
        raise NotFoundError(f"{len(stale)} proposal id(s) are unknown or no longer current", {"ids": stale[:50]})
    chosen = [current[i] for i in wanted]
    by_item: dict[str, dict[str, AttributeValue]] = {}
    for p in chosen:
        by_item.setdefault(p.item_id, {})[p.field] = p.value
    changed = [replace(items[k], attributes={**dict(items[k].attributes), **extra}) for k, extra in by_item.items()]
    (upsert or repo.upsert_many)(changed)
    return ApplyResult(tuple(chosen), tuple(by_item))
