"""The query vocabulary of one catalog: brands, category names, attribute keys and values, locations.

Everything comes from the :class:`~shopkeep.catalog.snapshot.CatalogSnapshot` and its
:class:`~shopkeep.search.attributes.AttributeTable`, so the parser works on any catalog; only
general shopping language (synonyms below) is built in. Phrases are matched on *word keys*: folded,
stemmed words with hyphens/apostrophes joined ("T-Shirt" → ``tshirt``, "Kiehl's" → ``kiehl``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.index.keyword import fold, stem
from shopkeep.search.attributes import AttributeTable

__all__ = ["CATEGORY_SYNONYMS", "Phrase", "Vocabulary", "edit_distance", "words"]

_WORD = re.compile(r"[a-z0-9]+(?:['’\-][a-z0-9]+)*")

#: General shopping synonyms: a phrase → category phrases tried in order (first one the catalog has).
CATEGORY_SYNONYMS: dict[str, tuple[str, ...]] = {
    "sunscreen": ("sunscreen", "sun protect", "sun protection", "sun care"),
    "sunblock": ("sunscreen", "sun protect", "sun protection", "sun care"),
    "sun cream": ("sunscreen", "sun protect", "sun protection"),
    "face wash": ("cleanser", "face wash"),
    "facial cleanser": ("cleanser",),
    "cleansing": ("cleanser",),
    "moisturiser": ("moisturizer",),
    "moisturizing cream": ("moisturizer",),
    "face cream": ("moisturizer",),
    "day cream": ("moisturizer",),
    "night cream": ("moisturizer",),
    "face lotion": ("moisturizer",),
    "serum": ("serum", "treatment"),
    "eye": ("eye cream",),
    "eye treatment": ("eye cream",),
    "mask": ("face mask", "mask"),
    "sheet mask": ("face mask",),
    "tee": ("tshirt",),
    "tshirt": ("tshirt",),
    "t shirt": ("tshirt",),
    "trainer": ("sneaker", "running shoe"),
    "runner": ("running shoe",),
    "boot": ("boot",),
    "perfume": ("eau de parfum", "fragrance"),
    "cologne": ("eau de toilette", "fragrance"),
    "lippy": ("lipstick",),
    "soda water": ("sparkling water",),
    "coat": ("jacket", "outerwear"),
    "gown": ("dress",),
    "evening dress": ("dress",),
}

#: Boolean attribute synonyms: phrase → (key, value).
BOOL_SYNONYMS: dict[str, tuple[str, bool]] = {
    "unscented": ("fragrance_free", True), "scent free": ("fragrance_free", True),
    "scentfree": ("fragrance_free", True), "fragranceless": ("fragrance_free", True),
    "perfume free": ("fragrance_free", True), "perfumefree": ("fragrance_free", True),
    "no scent": ("fragrance_free", True), "without scent": ("fragrance_free", True),
    "not vegan": ("vegan", False), "non vegan": ("vegan", False),
    "water resistant": ("waterproof", True), "water proof": ("waterproof", True),
    "not tested on animal": ("cruelty_free", True), "cruelty free": ("cruelty_free", True),
    "gluten free": ("gluten_free", True), "celiac safe": ("gluten_free", True),
}

#: Ingredient words after "no"/"without"/"free of" → the ``<x>_free`` key they negate.
FREE_WORDS: dict[str, str] = {
    "fragrance": "fragrance_free", "fragrances": "fragrance_free", "perfume": "fragrance_free",
    "parfum": "fragrance_free", "scent": "fragrance_free", "added fragrance": "fragrance_free",
    "paraben": "paraben_free", "sulfate": "sulfate_free", "sulphate": "sulfate_free", "sl": "sulfate_free",
    "silicone": "silicone_free", "phthalate": "phthalate_free", "gluten": "gluten_free",
}

#: Value synonyms of string attributes: phrase → value (only used where the catalog has the value).
VALUE_SYNONYMS: dict[str, str] = {
    "extra small": "xs", "xsmall": "xs", "small": "s", "medium": "m", "large": "l", "extra large": "xl",
    "xlarge": "xl", "wide feet": "wide", "wide foot": "wide", "wide width": "wide", "wide fitting": "wide",
    "gray": "grey", "skinny": "slim", "loose": "relaxed",
}


#: Last words of a brand name that shoppers leave out ("Fenty Beauty" → "fenty").
_GENERIC_BRAND_TAILS = frozenset(("collection", "skincare", "cosmetic", "md", "beauty", "lab", "co"))


def words(text: str) -> list[str]:
    """Word keys of ``text``: folded, hyphens/apostrophes joined, possessive ``'s`` dropped, stemmed.

    >>> words("Kiehl's Fragrance-Free T-Shirts")
    ['kiehl', 'fragrancefree', 'tshirt']
    """
    out = []
    for w in _WORD.findall(fold(text).replace("’", "'")):
        if w.endswith("'s"):
            w = w[:-2]
        out.append(stem(re.sub(r"['\-]", "", w)))
    return out


def edit_distance(a: str, b: str, limit: int = 2) -> int:
    """Damerau-Levenshtein (adjacent swaps) distance, or ``limit + 1`` once it exceeds ``limit``.

    >>> edit_distance("cliniqe", "clinique"), edit_distance("moisturzier", "moisturizer"), edit_distance("a", "xyz")
    (1, 1, 3)
    """
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1] if prev[-1] <= limit else limit + 1


@dataclass(frozen=True)
class Phrase:
    """A vocabulary phrase: what it sets when found in a query."""

    kind: str  # category | brand | attribute
    key: str
    value: str | bool


@dataclass
class Vocabulary:
    """Phrase table (word-key tuples → meanings), numeric keys and locations of one catalog."""

    phrases: dict[tuple[str, ...], list[Phrase]] = field(default_factory=dict)
    numeric_keys: tuple[str, ...] = ()
    bool_keys: frozenset[str] = frozenset()
    value_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    locations: tuple[str, ...] = ()
    max_len: int = 1
    fuzzy_terms: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: A phrase's words written together ("larocheposay", "sunscreen") → the phrase key, so that
    #: "la roche posay", "laroche posay", "sun screen" and "cera ve" find their phrase.
    joined: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: Words of brand names (typo correction allows them a second edit in shorter words).
    brand_terms: frozenset[str] = frozenset()
    #: Brand → the word keys of every category level its items are in (a typo read as a brand must
    #: sell the query's category: "i crave a snack bar" is not CeraVe).
    brand_categories: dict[str, frozenset[str]] = field(default_factory=dict)

    def add(self, text: str | Iterable[str], phrase: Phrase) -> None:
        key = tuple(words(text) if isinstance(text, str) else text)
        if not key:
            return
        found = self.phrases.setdefault(key, [])
        if phrase not in found:
            found.append(phrase)
        self.max_len = max(self.max_len, len(key))

    @classmethod
    def build(cls, snapshot: CatalogSnapshot, table: AttributeTable) -> Vocabulary:
        """The vocabulary of ``snapshot`` (see the module docstring)."""
        vocab = cls(numeric_keys=table.numeric_keys(), bool_keys=frozenset(table.bool_keys),
                    locations=tuple(snapshot.locations))
        _add_categories(vocab, snapshot)
        _add_brands(vocab, snapshot)
        vocab.brand_terms = frozenset(w for key, found in vocab.phrases.items() if any(p.kind == "brand" for p in found)
                                      for w in key)
        vocab.brand_categories = _brand_categories(snapshot)
        _add_attributes(vocab, table)
        terms = {w for key in vocab.phrases for w in key if len(w) >= 4 and w.isalpha()}
        for term in sorted(terms):
            vocab.fuzzy_terms[term[:1]] = (*vocab.fuzzy_terms.get(term[:1], ()), term)
        for key in vocab.phrases:
            glued = "".join(key)
            if len(glued) >= 5:
                vocab.joined.setdefault(glued, key)
        return vocab


def _add_categories(vocab: Vocabulary, snapshot: CatalogSnapshot) -> None:
    names: set[str] = {level for path in snapshot.category_paths for level in path}
    keys: dict[tuple[str, ...], str] = {}
    for name in sorted(names):
        k = tuple(words(name))
        if k:
            keys[k] = " ".join(k)
            vocab.add(k, Phrase("category", "category", " ".join(k)))
    for syn, targets in CATEGORY_SYNONYMS.items():
        for target in targets:
            tk = tuple(words(target))
            if tk in keys:
                vocab.add(syn, Phrase("category", "category", keys[tk]))
                break


def _brand_aliases(name: str, others: set[str]) -> list[tuple[str, ...]]:
    k = tuple(words(name))
    out = [k] if k else []
    if len(k) >= 2 and (k[-1] in _GENERIC_BRAND_TAILS or
                        (len(k) >= 3 and k[1] in ("since", "by"))):
        out.append(k[:1] if k[1] in ("since", "by") else k[:-1])
    return [a for a in out if a and " ".join(a) not in others]


def _add_brands(vocab: Vocabulary, snapshot: CatalogSnapshot) -> None:
    words_in_categories = {w for key in vocab.phrases for w in key}
    for name in snapshot.brands:
        for alias in _brand_aliases(name, words_in_categories):
            vocab.add(alias, Phrase("brand", "brand", name))


def _brand_categories(snapshot: CatalogSnapshot) -> dict[str, frozenset[str]]:
    keys: dict[str, str] = {}
    out: dict[str, set[str]] = {}
    for item in snapshot.items:
        if not item.brand:
            continue
        found = out.setdefault(item.brand, set())
        for level in item.category:
            key = keys.get(level)
            if key is None:
                key = keys[level] = " ".join(words(level))
            found.add(key)
    return {b: frozenset(v) for b, v in out.items()}


def _add_attributes(vocab: Vocabulary, table: AttributeTable) -> None:
    for key in sorted(table.bool_keys):
        spaced = key.replace("_", " ")
        vocab.add(spaced, Phrase("attribute", key, True))
        vocab.add(key.replace("_", "-"), Phrase("attribute", key, True))
        vocab.add(f"non {spaced}", Phrase("attribute", key, False))
    for phrase, (key, value) in BOOL_SYNONYMS.items():
        if key in table.bool_keys:
            vocab.add(phrase, Phrase("attribute", key, value))
    for word, key in FREE_WORDS.items():
        if key in table.bool_keys:
            for lead in ("no", "without", "free of", "free from", "zero", "0", "non", "minus"):
                vocab.add(f"{lead} {word}", Phrase("attribute", key, True))
            vocab.add(f"{word} free", Phrase("attribute", key, True))
    for key in table.filter_keys():
        if key in table.bool_keys or key in table.numeric_keys():
            continue
        values = table.values(key)
        if not values or len(values) > 60:
            continue
        vocab.value_keys[key] = values
        for text in values:
            vocab.add(text, Phrase("attribute", key, text))
        for syn, target in VALUE_SYNONYMS.items():
            if target in values:
                vocab.add(syn, Phrase("attribute", key, target))
