"""Query understanding: shopper text → a frozen :class:`ParsedQuery` of hard constraints + free text.

Patterns (general shopping language) run first on the folded text and remove what they consume:

* **sort** — "best/top/highest rated" → ``rating``; "cheapest", "lowest price" → ``price_asc``;
  "most expensive" → ``price_desc``; "newest", "latest", "new arrivals" → ``newest``.
* **numeric attributes** — "SPF 30", "spf30+", "SPF 50 or higher" → ``spf >= n`` (an SPF number is a
  minimum); "over/more than 100 ml" → ``>``, "at least 200ml"/"200 ml+" → ``>=``, "under/less than"
  → ``<``, "up to/at most/no bigger than" → ``<=``, a bare "100 ml" → ``==``; ranges "between 50 and
  100 ml", "50-100ml", "from 50ml to 100ml" → ``>=`` and ``<=``. Units map to the catalog's numeric
  key ending in ``_<unit>`` (``size_ml``); litres and ounces convert to ml.
* **price** (integer minor units) — "under $30", "less than 25", "up to 40 dollars", "$30 or less",
  a bare "$30" → ``price <= 3000`` (inclusive, like shop filters); "over $50", "$50+" → ``>=``;
  "between 20 and 40 dollars", "$20-$40", "20 to 40 bucks" → both; "around $30" → ±20 %;
  "cheap/affordable/inexpensive/budget" → ``price <= p33`` and "luxury/premium/expensive" →
  ``price >= p67``: the 33rd/67th percentile of the prices of the items matching the query's other
  constraints (so "cheap dress" is cheap *for a dress*).
* **availability** — "same-day pickup", "pick up today" → ``pickup``; "in stock at <store>",
  "available at <store>", "at <store>" → ``store`` (units at that location); "in stock" → ``in_stock``.
* **size** — "size 9", "size M", "size medium" → attribute ``size``.

Then vocabulary phrases from the catalog (:class:`~shopkeep.search.vocab.Vocabulary`), longest first:
categories (and synonyms: "sunscreen" → "sun protect"), brands, boolean attributes
("fragrance-free", "fragrance free", "unscented", "no fragrance", "without parabens", "vegan"),
attribute values ("red" → ``color``, "wide feet" → ``fit=wide``; values of a two-word key such as
``skin_type`` need context: "for dry skin", "dry/oily skin", "for sensitive"). A word the catalog
does not know and that is close to a vocabulary word is read as that word (typos): one edit (an
adjacent swap counts as one) from 5 letters, two from 8; a word of brand names also takes two edits
from 7 letters when it keeps the first letter, differs in length by at most one and no other
vocabulary word is as close ("cetafil" → Cetaphil, "elefant" → Drunk Elephant). A corrected word
may complete a phrase begun by the words before it ("drunk elephent", "new balence"). A brand read
from a typo must have items in the query's categories, else the word stays free text ("i crave a
snack bar" is not CeraVe). What is left, minus filler words, is the free text for keyword and dense
retrieval.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shopkeep.index.keyword import fold
from shopkeep.search.vocab import VALUE_SYNONYMS, Phrase, Vocabulary, edit_distance, words
from shopkeep.types import Money

__all__ = ["KINDS", "Constraint", "ParsedQuery", "QueryParser"]

#: Constraint kinds, least important first (relaxation drops them in this order).
KINDS = ("availability", "numeric", "attribute", "price", "brand", "category")

_NUM = r"(\d+(?:[.,]\d{1,2})?)"
_CUR = r"(?:\$|usd|dollars?|bucks|eur|euros?|quid|pounds?)"
_SORTS = (
    (r"\b(?:best|top|highest)[- ]?(?:rated|reviewed)\b|\bhighest rating\b", "rating"),
    (r"\bmost expensive\b|\bpriciest\b|\bprice high to low\b", "price_desc"),
    (r"\bcheapest\b|\blowest[- ]price[d]?\b|\bleast expensive\b|\bprice low to high\b", "price_asc"),
    (r"\bnewest\b|\blatest\b|\bnew arrivals?\b|\bjust in\b|\bmost recent\b", "newest"),
)
_MAX_WORDS = (r"under|below|less th[ae]n|cheaper th[ae]n|up to|at most|max(?:imum)?|no more than|not more than|"
              r"within|for less than|not over|lower than|budget(?: of| is)?|<=?")
_MIN_WORDS = r"over|above|more th[ae]n|at least|min(?:imum)?|starting at|pricier th[ae]n|higher th[ae]n|>=?"
_UNIT = r"(ml|milliliters?|millilitres?|l|liters?|litres?|fl\.? ?oz|oz|ounces?|g|grams?)"
_NUM_OPS = {"over": ">", "above": ">", "more than": ">", "greater than": ">", "bigger than": ">",
            "larger than": ">", "at least": ">=", "min": ">=", "minimum": ">=", "under": "<", "below": "<",
            "less than": "<", "smaller than": "<", "at most": "<=", "up to": "<=", "max": "<=", "maximum": "<=",
            "no more than": "<=", "not more than": "<=", "no bigger than": "<=", "not bigger than": "<=",
            "no larger than": "<=", "not larger than": "<=", "no less than": ">=", "not less than": ">=",
            "no smaller than": ">=", "not smaller than": ">="}
_CHEAP = r"\b(?:cheap|affordable|inexpensive|budget|low[- ]cost|bargain|economical|not expensive|cheaper)\b"
_PREMIUM = r"\b(?:expensive|luxury|luxurious|premium|high[- ]end|splurge|prestige)\b"
_PICKUP = (r"\b(?:same[- ]?day (?:pick[- ]?up|collection)|pick[- ]?up today|same[- ]?day|pick[- ]?up in[- ]store|"
           r"in[- ]store pick[- ]?up|store pick[- ]?up|curbside|click and collect|pick[- ]?up)\b")
_FILLER = frozenset((
    "a", "an", "the", "for", "with", "and", "or", "in", "of", "to", "me", "my", "i", "im", "need", "want",
    "wanted", "looking", "look", "show", "find", "some", "something", "that", "is", "are", "good", "great", "nice",
    "please", "any", "on", "at", "by", "it", "which", "who", "can", "you", "get", "buy", "shop", "new", "one",
    "ones", "item", "items", "product", "products", "recommend", "recommendation", "best", "quality", "fit",
    "type", "kind", "skin", "suitable", "under", "over", "very", "really",
))


_ID_PREFIX = re.compile(r"^\s*(?:sku|item|product|id|part|model|style|#)\s*(?:#|no\.?|number|:)?\s*(\S+)\s*$")


@dataclass(frozen=True, slots=True)
class Constraint:
    """One hard constraint: ``kind`` (see :data:`KINDS`), ``key``, ``op``, ``value``, source ``text``.

    Price values are integer minor units; ops ``cheap``/``premium`` carry the percentile (0.33/0.67).
    An attribute ``key`` may name alternatives joined by ``|`` (any of them may hold the value).
    """

    kind: str
    key: str
    op: str
    value: str | int | float | bool
    text: str = ""

    def label(self) -> str:
        """Canonical short form, e.g. ``price<=3000``, ``fragrance_free=true``, ``spf>=30``."""
        value = ("true" if self.value else "false") if isinstance(self.value, bool) else self.value
        if isinstance(value, float) and value == int(value):
            value = int(value)
        if self.op in ("cheap", "premium"):
            return f"price={self.op}"
        return f"{self.key}{self.op}{value}"


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    """How a query was understood: constraints, free ``text``, ``sort``, an exact item hit."""

    query: str
    text: str
    constraints: tuple[Constraint, ...] = ()
    sort: str | None = None
    exact_item_id: str | None = None
    corrections: tuple[tuple[str, str], ...] = field(default=())

    def of_kind(self, kind: str) -> tuple[Constraint, ...]:
        """The constraints of one kind."""
        return tuple(c for c in self.constraints if c.kind == kind)

    def canonical(self, kind: str) -> str:
        """Sorted labels of one kind joined by ``;`` (``sort``: the sort intent) — for exact-match tests."""
        if kind == "sort":
            return self.sort or ""
        return ";".join(sorted(c.label() for c in self.of_kind(kind)))

    def without(self, constraint: Constraint) -> ParsedQuery:
        """A copy without ``constraint`` (relaxation)."""
        rest = tuple(c for c in self.constraints if c is not constraint)
        return ParsedQuery(self.query, self.text, rest, self.sort, self.exact_item_id, self.corrections)

    def without_all(self, dropped: tuple[Constraint, ...]) -> ParsedQuery:
        """A copy without the ``dropped`` constraints."""
        rest = tuple(c for c in self.constraints if all(c is not d for d in dropped))
        return ParsedQuery(self.query, self.text, rest, self.sort, self.exact_item_id, self.corrections)

    def to_dict(self) -> dict[str, Any]:
        """The wire form shown in search responses."""
        return {"query": self.query, "text": self.text, "sort": self.sort, "exact_item_id": self.exact_item_id,
                "constraints": [{"kind": c.kind, "key": c.key, "op": c.op, "value": c.value, "text": c.text,
                                 "label": c.label()} for c in self.constraints],
                "corrections": [{"from": a, "to": b} for a, b in self.corrections]}


_UNIT_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
               "sixteen seventeen eighteen nineteen")
_TENS_WORDS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety"
_UNITS = {w: n for n, w in enumerate(re.findall(r"\w+", _UNIT_WORDS))}
_TENS = {w: 10 * n for n, w in enumerate(re.findall(r"\w+", _TENS_WORDS)) if n > 1}
_NUMBER_WORD = "|".join(sorted([*_UNITS, *_TENS, "hundred", "a hundred"], key=len, reverse=True))
_NUMBER_RUN = re.compile(rf"\b(?:{_NUMBER_WORD})(?:(?:[\s\-]+|(?<=hundred) and )(?:{_NUMBER_WORD}))*\b")
_AFTER_SMALL = re.compile(rf"\s*(?:{_CUR}|ml|l|liters?|oz|ounces?)\b")


def numbers_to_digits(text: str) -> str:
    """Spelled-out amounts as digits: "under thirty" → "under 30", "twenty-five dollars" → "25 dollars".

    A lone unit word ("one", "two") is only read as a number before a currency or unit word, so
    "the one with pockets" keeps its words.

    >>> numbers_to_digits("under one hundred dollars, or twenty-five bucks; the one in blue")
    'under 100 dollars, or 25 bucks; the one in blue'
    """
    def value(m: re.Match[str]) -> str:
        parts = [w for w in re.split(r"[\s\-]+", m.group(0)) if w and w != "and"]
        current = 0
        for w in parts:
            if w == "hundred":
                current = max(current, 1) * 100
            elif w == "a":
                current = 1
            elif w in _TENS:
                current += _TENS[w]
            else:
                current += _UNITS[w]
        small = len(parts) == 1 and parts[0] in _UNITS and _UNITS[parts[0]] < 10
        if small and not _AFTER_SMALL.match(m.string, m.end()):
            return m.group(0)
        return str(current)

    return _NUMBER_RUN.sub(value, text)


def _amount(text: str, currency: str) -> int:
    return Money.from_major(text.replace(",", "."), currency).amount


class _State:
    """Mutable scratch of one parse."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.constraints: list[Constraint] = []
        self.sort: str | None = None
        self.corrections: list[tuple[str, str]] = []

    def cut(self, pattern: str, fn: Any) -> None:
        """Apply ``fn(match)`` to each match of ``pattern``; a truthy result removes the span."""
        def sub(m: re.Match[str]) -> str:
            return " , " if fn(m) is not False else m.group(0)

        self.text = re.sub(pattern, sub, self.text)

    def add(self, kind: str, key: str, op: str, value: str | int | float | bool, text: str) -> None:
        c = Constraint(kind, key, op, value, text.strip())
        if all(c.label() != o.label() for o in self.constraints):
            self.constraints.append(c)


class QueryParser:
    """Parses shopper queries against one catalog's :class:`Vocabulary`.

    ``exact`` maps normalized titles and lower-cased item ids to item ids (direct hits).
    """

    def __init__(self, vocab: Vocabulary, exact: Mapping[str, str] | None = None, *, currency: str = "USD",
                 known_word: Any = None) -> None:
        self.vocab = vocab
        self.exact = dict(exact or {})
        self.currency = currency
        self.known_word = known_word or (lambda w: False)
        self._locations = [(loc, self._location_pattern(loc)) for loc in vocab.locations]
        self._size_key = next((k for k in vocab.value_keys if k == "size" or k.endswith("_size")), None)
        self._fuzzy_memo: dict[str, str | None] = {}

    @staticmethod
    def _location_pattern(loc: str) -> str:
        runs = re.findall(r"[a-z]+|\d+", fold(loc))
        parts = [rf"0*{int(r)}" if r.isdigit() else re.escape(r) for r in runs]
        return r"[\s\-_#]*".join(parts)

    def parse(self, query: str) -> ParsedQuery:
        """The :class:`ParsedQuery` of ``query``."""
        raw = query.strip()
        norm = " ".join(words(raw))
        hit = self.exact.get(raw.lower()) or (self.exact.get(norm) if len(norm) > 8 else None)
        prefixed = _ID_PREFIX.match(raw.lower())
        if hit is None and prefixed is not None:
            hit = self.exact.get(prefixed.group(1))
        if hit is not None:
            return ParsedQuery(raw, "", (), None, hit)
        st = _State(" " + numbers_to_digits(fold(raw.replace("€", "$").replace("£", "$"))) + " ")
        for pattern, name in _SORTS:
            st.cut(pattern, lambda m, name=name: setattr(st, "sort", st.sort or name))
        self._availability(st)
        self._numeric(st)
        self._price(st)
        self._size(st)
        rest = self._phrases(st)
        return ParsedQuery(raw, " ".join(rest), tuple(st.constraints), st.sort, None, tuple(st.corrections))

    # -- patterns -----------------------------------------------------------------------------
    def _availability(self, st: _State) -> None:
        for loc, pat in self._locations:
            st.cut(rf"\b(?:(?:in stock|available|pick[- ]?up|instore)\s+(?:at|in|from)|at|from|near)\s+(?:the\s+)?"
                   rf"(?:{pat})\b(?:\s+store)?",
                   lambda m, loc=loc: st.add("availability", "store", "=", loc, m.group(0)))
        st.cut(_PICKUP, lambda m: st.add("availability", "pickup", "=", "same_day", m.group(0)))
        st.cut(r"\b(?:in[- ]stock|available now|ready to ship)\b",
               lambda m: st.add("availability", "in_stock", "=", True, m.group(0)))

    def _unit_key(self, unit: str) -> tuple[str | None, float]:
        u = unit.replace(".", "").replace(" ", "")
        base, scale = ("ml", 1.0)
        if u in ("l", "liter", "liters", "litre", "litres"):
            scale = 1000.0
        elif u in ("floz", "oz", "ounce", "ounces"):
            base, scale = ("oz", 1.0)
        elif u in ("g", "gram", "grams"):
            base = "g"
        keys = self.vocab.numeric_keys
        key = next((k for k in keys if k == base or k.endswith("_" + base)), None)
        if key is None and base == "oz":
            key = next((k for k in keys if k.endswith("_ml")), None)
            scale = 29.5735
        return key, scale

    def _numeric(self, st: _State) -> None:
        if "spf" in self.vocab.numeric_keys:
            st.cut(r"\b(?:spf|sun protection factor)\s*-?\s*(\d{1,3})\s*(\+|plus|or (?:more|higher|above|greater))?",
                   lambda m: st.add("numeric", "spf", ">=", int(m.group(1)), m.group(0)))
        ops = "|".join(sorted(_NUM_OPS, key=len, reverse=True))

        def span(m: re.Match[str]) -> bool:
            key, scale = self._unit_key(m.group(4))
            lo_key, lo_scale = self._unit_key(m.group(2)) if m.group(2) else (key, scale)
            if key is None or lo_key != key:
                return False
            lo, hi = sorted(round(float(m.group(g).replace(",", ".")) * f, 2) for g, f in ((1, lo_scale), (3, scale)))
            st.add("numeric", key, ">=", lo, m.group(0))
            st.add("numeric", key, "<=", hi, m.group(0))
            return True

        st.cut(rf"\bbetween\s+{_NUM}\s*{_UNIT}?\s*(?:and|to|-|–|&)\s*{_NUM}\s*{_UNIT}\b", span)
        st.cut(rf"(?:\bfrom\s+)?\b{_NUM}\s*{_UNIT}?\s*(?:-|–|to)\s*{_NUM}\s*{_UNIT}\b", span)

        def unit(m: re.Match[str]) -> bool:
            key, scale = self._unit_key(m.group(3))
            if key is None:
                return False
            value = round(float(m.group(2).replace(",", ".")) * scale, 2)
            tail = (m.group(4) or "").strip()
            op = _NUM_OPS.get(m.group(1) or "", "==")
            if tail in ("+", "or more", "plus", "and up"):
                op = ">="
            elif tail in ("or less", "and under"):
                op = "<="
            st.add("numeric", key, op, value, m.group(0))
            return True

        st.cut(rf"\b(?:({ops})\s+)?{_NUM}\s*{_UNIT}\b\s*(\+|or more|or less|plus|and up|and under)?", unit)

    def _price(self, st: _State) -> None:
        cur = self.currency

        def rng(m: re.Match[str]) -> None:
            lo, hi = sorted((_amount(m.group(1), cur), _amount(m.group(2), cur)))
            st.add("price", "price", ">=", lo, m.group(0))
            st.add("price", "price", "<=", hi, m.group(0))

        st.cut(rf"\bbetween\s+\$?\s*{_NUM}\s*{_CUR}?\s*(?:and|to|-|&)\s*\$?\s*{_NUM}\s*{_CUR}?", rng)
        st.cut(rf"\bfrom\s+\$\s*{_NUM}\s*(?:-|to)\s*\$?\s*{_NUM}\s*{_CUR}?", rng)
        st.cut(rf"\$\s*{_NUM}\s*(?:-|to|–)\s*\$?\s*{_NUM}\s*{_CUR}?", rng)
        st.cut(rf"\b{_NUM}\s*(?:-|to)\s*{_NUM}\s*{_CUR}", rng)
        def around(m: re.Match[str]) -> None:
            st.add("price", "price", ">=", _amount(m.group(1), cur) * 8 // 10, m.group(0))
            st.add("price", "price", "<=", _amount(m.group(1), cur) * 12 // 10, m.group(0))

        st.cut(rf"\b(?:around|about|approximately|roughly|~)\s*\$?\s*{_NUM}\s*{_CUR}?", around)
        st.cut(rf"(?:\b|(?<=\s))(?:{_MAX_WORDS})\s*\$?\s*{_NUM}\s*{_CUR}?",
               lambda m: st.add("price", "price", "<=", _amount(m.group(1), cur), m.group(0)))
        st.cut(rf"\$\s*{_NUM}\s*{_CUR}?\s*(?:or less|max|and under|or under|and below|or cheaper)\b|"
               rf"\b{_NUM}\s*{_CUR}\s*(?:or less|max|and under|or under|and below|or cheaper)\b",
               lambda m: st.add("price", "price", "<=", _amount(m.group(1) or m.group(2), cur), m.group(0)))
        st.cut(rf"(?:\b|(?<=\s))(?:{_MIN_WORDS})\s*\$?\s*{_NUM}\s*{_CUR}?|\$\s*{_NUM}\s*(?:\+|or more|and up|plus)",
               lambda m: st.add("price", "price", ">=", _amount(m.group(1) or m.group(2), cur), m.group(0)))
        st.cut(rf"\$\s*{_NUM}\s*{_CUR}?|\b{_NUM}\s*(?:dollars?|bucks|usd|euros?|eur|quid)\b",
               lambda m: st.add("price", "price", "<=", _amount(m.group(1) or m.group(2), cur), m.group(0)))
        if not any(c.kind == "price" for c in st.constraints):
            st.cut(_CHEAP, lambda m: st.add("price", "price", "cheap", 0.33, m.group(0)))
            st.cut(_PREMIUM, lambda m: st.add("price", "price", "premium", 0.67, m.group(0)))

    def _size(self, st: _State) -> None:
        key = self._size_key
        if key is None:
            return
        values = set(self.vocab.value_keys[key])

        def size(m: re.Match[str]) -> bool:
            raw = re.sub(r"[\s\-]+", " ", m.group(1).strip())
            value = VALUE_SYNONYMS.get(raw.replace("x ", "extra "), raw).replace(" ", "")
            value = {"xlarge": "xl", "xsmall": "xs"}.get(value, value)
            if value.endswith(".0"):
                value = value[:-2]
            if value not in values:
                return False
            st.add("attribute", key, "=", value, m.group(0))
            return True

        st.cut(r"\b(?:size|sz)\s*:?\s*(extra[- ]small|extra[- ]large|x-?large|x-?small|xxs|xs|xxl|xl|small|medium|"
               r"large|s|m|l|\d{1,2}(?:\.5)?)\b", size)

    # -- vocabulary ---------------------------------------------------------------------------
    def _phrases(self, st: _State) -> list[str]:
        toks = words(st.text)
        rest: dict[int, str] = {}  # position -> word left for free text
        free: set[int] = set()  # positions no phrase consumed (filler included)
        fixes: list[tuple[int, int, int, str, list[Constraint]]] = []  # phrase start, end, typo position, typo, brands
        i = 0
        while i < len(toks):
            used = self._match_at(st, toks, i)
            if used:
                i += used
                continue
            glued = self._glued(toks, i)
            if glued is not None:
                toks = glued
                used = self._match_at(st, toks, i)
                if used:
                    i += used
                    continue
            fixed = self._fuzzy(toks[i])
            if fixed is not None:
                fixed_toks = [*toks[:i], fixed, *toks[i + 1 :]]
                found = self._match_fixed(st, fixed_toks, i, free)
                if found is not None:
                    start, end, added = found
                    st.corrections.append((toks[i], fixed))
                    fixes.append((start, end, i, toks[i], [c for c in added if c.kind == "brand"]))
                    for j in range(start, i):
                        free.discard(j)
                        rest.pop(j, None)
                    toks = fixed_toks
                    i = end
                    continue
            free.add(i)
            if toks[i] not in _FILLER:
                rest[i] = toks[i]
            i += 1
        self._check_brand_fixes(st, toks, fixes, rest)
        return [rest[j] for j in sorted(rest)]

    def _match_fixed(self, st: _State, toks: list[str], i: int,
                     free: set[int]) -> tuple[int, int, list[Constraint]] | None:
        """A phrase through the corrected word at ``i``, starting there or up to two free words before it:
        (start, end, constraints added), or None (nothing added)."""
        for start in (i - 2, i - 1, i):
            if start < 0 or any(j not in free for j in range(start, i)):
                continue
            before = len(st.constraints)
            used = self._match_at(st, toks, start)
            if used and start + used > i:
                return start, start + used, st.constraints[before:]
            del st.constraints[before:]
        return None

    def _check_brand_fixes(self, st: _State, toks: list[str],
                           fixes: list[tuple[int, int, int, str, list[Constraint]]], rest: dict[int, str]) -> None:
        """Undo brands read from typos whose brand has no items in the query's categories."""
        cats = [str(c.value) for c in st.constraints if c.kind == "category"]
        if not cats:
            return
        for start, end, pos, typo, brands in fixes:
            known = [self.vocab.brand_categories.get(str(b.value), frozenset()) for b in brands]
            if not brands or any(all(c in k for c in cats) for k in known):
                continue
            st.constraints = [c for c in st.constraints if all(c is not b for b in brands)]
            st.corrections = [fx for fx in st.corrections if fx[0] != typo]
            for j in range(start, end):
                word = typo if j == pos else toks[j]
                if word not in _FILLER:
                    rest[j] = word

    def _match_at(self, st: _State, toks: list[str], i: int) -> int:
        for length in range(min(self.vocab.max_len, len(toks) - i), 0, -1):
            key = tuple(toks[i : i + length])
            found = self.vocab.phrases.get(key)
            if not found:
                continue
            text = " ".join(key)
            cats = [p for p in found if p.kind == "category"]
            if cats:
                st.add("category", "category", "=", str(cats[0].value), text)
                return length
            bools = [p for p in found if p.kind == "attribute" and isinstance(p.value, bool)]
            if bools:
                st.add("attribute", bools[0].key, "=", bools[0].value, text)
                return length
            brands = [p for p in found if p.kind == "brand"]
            if brands and length == 1 and key[0] in _FILLER and (i + 1 >= len(toks) or toks[i + 1] in _FILLER):
                brands = []  # "what kind of ..." is not the brand KIND; "kind bars" is
            if brands:
                for b in brands:
                    st.add("brand", "brand", "=", str(b.value), text)
                return length
            values = [p for p in found if p.kind == "attribute" and self._value_ok(p, toks, i, length)]
            if values:
                key_names = "|".join(sorted({p.key for p in values}))
                st.add("attribute", key_names, "=", str(values[0].value), text)
                return length + self._noun_after(values, toks, i + length)
        return 0

    @staticmethod
    def _noun(p: Phrase) -> str | None:
        parts = p.key.split("_")
        return parts[0] if len(parts) > 1 else None

    def _value_ok(self, p: Phrase, toks: list[str], i: int, length: int) -> bool:
        noun = self._noun(p)
        value = str(p.value)
        if noun is None:
            return len(value) >= 3 and not value.isdigit()
        if len(value) >= 6:
            return True
        after = toks[i + length : i + length + 4]
        for j, w in enumerate(after):
            if w == noun:
                return True
            if w not in ("and", "or", "/", "to") and not self.vocab.phrases.get((w,)):
                break
            if j >= 3:
                break
        return i > 0 and toks[i - 1] in ("for", "and", "or")

    def _noun_after(self, values: list[Phrase], toks: list[str], j: int) -> int:
        noun = self._noun(values[0])
        return 1 if noun is not None and j < len(toks) and toks[j] == noun else 0

    def _glued(self, toks: list[str], i: int) -> list[str] | None:
        """``toks`` with a split phrase at ``i`` rejoined ("la roche posay" → ``la rocheposay``), or None."""
        for n in (3, 2):
            key = self.vocab.joined.get("".join(toks[i : i + n])) if i + n <= len(toks) else None
            if key is not None and tuple(toks[i : i + n]) != key:
                return [*toks[:i], *key, *toks[i + n :]]
        return None

    def _fuzzy(self, tok: str) -> str | None:
        if tok in self._fuzzy_memo:
            return self._fuzzy_memo[tok]
        found = self._fuzzy_scan(tok)
        if len(self._fuzzy_memo) < 50_000:  # bounded: typos are few, but queries are unbounded
            self._fuzzy_memo[tok] = found
        return found

    def _fuzzy_scan(self, tok: str) -> str | None:
        if len(tok) < 5 or tok in _FILLER or not tok.isalpha() or self.known_word(tok) or (tok,) in self.vocab.phrases:
            return None
        limit = 1 if len(tok) < 7 else 2
        found: list[tuple[int, str]] = []
        for terms in self.vocab.fuzzy_terms.values():
            for term in terms:
                d = edit_distance(tok, term, limit)
                if d <= limit:
                    found.append((d, term))
        if not found:
            return None
        best_d = min(d for d, _ in found)
        best = [t for d, t in found if d == best_d]
        if best_d < 2 or len(tok) >= 8:
            return best[0]
        # a second edit in a 7-letter word: only a brand word, unambiguous, same first letter, length within one
        term = best[0]
        ok = len(best) == 1 and term in self.vocab.brand_terms and term[0] == tok[0] and abs(len(term) - len(tok)) <= 1
        return term if ok else None
