"""Optional LLM phrasing of concierge replies, behind a guard that only lets grounded text through.

Off by default. With ``$SHOPKEEP_CONCIERGE_LLM_URL`` (or a :class:`PhrasingConfig` ``url``) set to an
OpenAI-compatible base URL (``http://127.0.0.1:8080/v1``), :class:`LLMPhraser` sends the template reply
and its products to ``<url>/chat/completions`` and asks for the same content in friendlier words. The
call has a hard wall-clock ``timeout_s``; any failure (timeout, HTTP error, malformed answer) keeps the
template reply. The concierge never waits on the model for *what* to answer — products, prices and
reasons are decided before the model is called — only for how to say it.

The guard (:func:`check_phrasing`) compares the phrased text with the structured answer and rejects it
(the template reply is used) when it mentions anything absent from the data:

* **numbers** — every number (digits or spelled out: "twenty") must occur in the grounding: the template
  text, product titles, prices, reasons and stated constraints, or be a count up to the number of products;
* **prices** — a currency amount ("$12", "12 dollars") must be a product's price or a stated budget;
* **items and brands** — a catalog brand or product title that is not among the answered products (or
  the shopper's own words) is refused, and so is a capitalized name found nowhere in the grounding;
* **claims** — marketing and attribute claims ("dermatologist recommended", "vegan", "in stock",
  "free shipping", "clinically proven", …, see :data:`CLAIMS`) must occur in the grounding;
* **disclosure** — when the template says it is an automated assistant, the phrased text must too.

>>> g = Grounding("Here are 2 picks under $30.", (("CeraVe Lotion", "CeraVe", 1699, ("fragrance-free",)),), ())
>>> check_phrasing("The CeraVe Lotion is $16.99 and fragrance-free.", g).ok
True
>>> check_phrasing("The CeraVe Lotion is $12.99 and vegan.", g).violations
('price 12.99 is not a product price or a stated budget', 'number 12.99 is not in the data', \
'claim "vegan" is not in the data')
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from shopkeep.errors import ValidationError
from shopkeep.index.keyword import fold
from shopkeep.search.query import numbers_to_digits

__all__ = ["CLAIMS", "ENV_URL", "Grounding", "GuardResult", "LLMPhraser", "Phrased", "PhrasingConfig",
           "check_phrasing", "grounding_for"]

ENV_URL = "SHOPKEEP_CONCIERGE_LLM_URL"

#: Claim words and phrases (folded, hyphens as spaces) that the phrased text may only use when the data does.
CLAIMS = (
    "fragrance free", "unscented", "scent free", "vegan", "cruelty free", "organic", "gluten free", "paraben free",
    "sulfate free", "silicone free", "waterproof", "water resistant", "hypoallergenic", "non comedogenic",
    "dermatologist", "clinically", "proven", "award", "best seller", "bestseller", "best selling", "number one",
    "#1", "natural", "sale", "discount", "off", "free shipping", "shipping", "in stock", "pickup", "pick up",
    "same day", "limited", "exclusive", "guarantee", "guaranteed", "cure", "cures", "treats", "heals",
    "prevents", "anti aging", "spf", "sensitive skin", "dry skin", "oily skin", "acne", "eczema", "safe for",
    "recommended", "top rated", "rated", "reviews", "wide fit", "sustainable", "eco", "recyclable",
)
_ALWAYS_OK = frozenset(("i", "i'm", "im", "hi", "hello", "here", "shopkeep", "ai", "you", "your"))
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)?")
_PRICE = re.compile(r"\$\s*(\d+(?:[.,]\d{1,2})?)|(\d+(?:[.,]\d{1,2})?)\s*(?:dollars?|bucks|usd)\b")
_NAME = re.compile(r"(?<![.!?:]\s)(?<!^)\b([A-Z][\w'’!&-]*)")


@dataclass(frozen=True)
class Grounding:
    """What a reply may mention: the template ``text``; per product (title, brand, price minor units,
    reasons); the shopper's stated constraints as (label, words) pairs; catalog brands and titles that
    must NOT appear unless answered."""

    text: str
    products: tuple[tuple[str, str | None, int | None, tuple[str, ...]], ...]
    stated: tuple[tuple[str, str], ...]
    catalog_brands: tuple[str, ...] = ()
    catalog_titles: tuple[str, ...] = ()
    budgets_minor: tuple[int, ...] = ()

    def corpus(self) -> str:
        """All grounding text, folded, hyphens as spaces."""
        parts = [self.text]
        for title, brand, price, reasons in self.products:
            parts += [title, brand or "", _major(price) if price is not None else "", *reasons]
        for label, said in self.stated:
            parts += [label, said]
        return _norm(" ".join(parts))


@dataclass(frozen=True)
class GuardResult:
    """``ok`` when nothing ungrounded was found; ``violations`` says what was."""

    ok: bool
    violations: tuple[str, ...]


def _norm(text: str) -> str:
    return re.sub(r"[\-_/]+", " ", fold(numbers_to_digits(fold(text))))


def _major(minor: int) -> str:
    return f"{minor / 100:.2f}"


def _value(token: str) -> float:
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+", token):
        return float(token.replace(",", ""))
    return float(token.replace(",", "."))


def _numbers(text: str) -> set[float]:
    return {_value(m) for m in _NUMBER.findall(text)}


def _has(text: str, phrase: str) -> bool:
    return re.search(rf"(?<![\w#]){re.escape(phrase)}(?!\w)", text) is not None


@lru_cache(maxsize=300_000)
def light_norm(text: str) -> str:
    """Folded, hyphens as spaces (how catalog names are compared; cheap enough for every title)."""
    return re.sub(r"[\-_/]+", " ", fold(text))


def _foreign(norm: str, names: Iterable[str], allowed: str) -> list[str]:
    out = []
    for n in names:
        key = light_norm(n)
        if len(key) >= 3 and key in norm and _has(norm, key) and not _has(allowed, key):
            out.append(n)
    return out


def check_phrasing(phrased: str, g: Grounding) -> GuardResult:
    """Check ``phrased`` against the grounding (see the module docstring)."""
    bad: list[str] = []
    norm, corpus = _norm(phrased), g.corpus()
    prices = {round(p / 100, 2) for _, _, p, _ in g.products if p is not None} | {
        round(b / 100, 2) for b in g.budgets_minor} | {
        round(_value(m.group(1) or m.group(2)), 2) for m in _PRICE.finditer(corpus)}
    for m in _PRICE.finditer(norm):
        amount = round(_value(m.group(1) or m.group(2)), 2)
        if amount not in prices:
            bad.append(f"price {amount:g} is not a product price or a stated budget")
    allowed_numbers = _numbers(corpus) | set(range(len(g.products) + 1)) | prices
    bad += [f"number {n:g} is not in the data" for n in sorted(_numbers(norm) - allowed_numbers)]
    answered = _norm(" ".join([*(t for t, _, _, _ in g.products), *(b or "" for _, b, _, _ in g.products),
                               *(s for _, s in g.stated)]))
    bad += [f'brand "{b}" is not in the answer' for b in _foreign(norm, g.catalog_brands, answered)]
    bad += [f'product "{t}" is not in the answer' for t in _foreign(norm, g.catalog_titles, answered)]
    words = set(re.findall(r"[a-z0-9']+", corpus))
    for m in _NAME.finditer(phrased):
        word = _norm(m.group(1)).strip("'’!&")
        if word and word not in _ALWAYS_OK and not all(w in words for w in re.findall(r"[a-z0-9']+", word)):
            bad.append(f'name "{m.group(1)}" is not in the data')
    bad += [f'claim "{c}" is not in the data' for c in CLAIMS if _has(norm, c) and not _has(corpus, c)]
    if "automated" in _norm(g.text) and "automated" not in norm:
        bad.append("the automated-assistant disclosure is missing")
    return GuardResult(not bad, tuple(dict.fromkeys(bad)))


@dataclass(frozen=True)
class PhrasingConfig:
    """The endpoint (``url`` = OpenAI-compatible base URL; None = off), model name, hard timeout."""

    url: str | None = None
    model: str = "default"
    timeout_s: float = 2.0
    api_key: str | None = None
    max_tokens: int = 400

    @classmethod
    def from_env(cls) -> PhrasingConfig:
        """``$SHOPKEEP_CONCIERGE_LLM_URL`` / ``_MODEL`` / ``_TIMEOUT_S`` / ``_API_KEY`` (unset URL = off)."""
        timeout = os.environ.get("SHOPKEEP_CONCIERGE_LLM_TIMEOUT_S", "2.0")
        try:
            seconds = float(timeout)
        except ValueError:
            raise ValidationError("SHOPKEEP_CONCIERGE_LLM_TIMEOUT_S", timeout, "must be a number of seconds") from None
        return cls(os.environ.get(ENV_URL) or None, os.environ.get("SHOPKEEP_CONCIERGE_LLM_MODEL", "default"),
                   seconds, os.environ.get("SHOPKEEP_CONCIERGE_LLM_API_KEY") or None)


@dataclass(frozen=True)
class Phrased:
    """The text to send, who wrote it (``llm`` or ``template``) and why a model text was refused."""

    text: str
    source: str
    violations: tuple[str, ...] = ()


_SYSTEM = ("You rephrase a shop assistant's reply so it reads naturally. Use ONLY the facts in the JSON you are "
           "given: do not add products, brands, prices, numbers, availability or any claim about a product. "
           "Keep the sentence saying that you are an automated assistant if there is one. Answer with the "
           "rephrased reply only.")


class LLMPhraser:
    """Calls the configured chat-completions endpoint and guards its answer (see the module docstring)."""

    def __init__(self, config: PhrasingConfig) -> None:
        if config.url is None:
            raise ValidationError("url", None, "an LLM phraser needs the endpoint URL")
        if not config.url.startswith(("http://", "https://")):
            raise ValidationError("url", config.url, "must be an http(s) URL")
        if not 0 < config.timeout_s <= 60:
            raise ValidationError("timeout_s", config.timeout_s, "must be in (0, 60] seconds")
        self.config = config
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="shopkeep-phrasing")
        self._lock = threading.Lock()
        self.calls = 0
        self.rejected = 0
        self.failed = 0

    @classmethod
    def from_env(cls) -> LLMPhraser | None:
        """A phraser when ``$SHOPKEEP_CONCIERGE_LLM_URL`` is set, else None (off)."""
        config = PhrasingConfig.from_env()
        return cls(config) if config.url else None

    def _request(self, g: Grounding) -> str:
        import httpx

        facts = {"reply": g.text, "products": [
            {"title": t, "brand": b, "price": _major(p) if p is not None else None, "reasons": list(r)}
            for t, b, p, r in g.products], "shopper_asked_for": [s for _, s in g.stated]}
        body = {"model": self.config.model, "temperature": 0, "max_tokens": self.config.max_tokens,
                "messages": [{"role": "system", "content": _SYSTEM},
                             {"role": "user", "content": json.dumps(facts, ensure_ascii=False)}]}
        headers = {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
        url = self.config.url.rstrip("/") + "/chat/completions"  # type: ignore[union-attr]
        res = httpx.post(url, json=body, headers=headers, timeout=self.config.timeout_s)
        res.raise_for_status()
        content = res.json()["choices"][0]["message"]["content"]
        if not isinstance(content, str) or not content.strip():
            raise ValueError("empty completion")
        return content.strip()

    def phrase(self, g: Grounding) -> Phrased:
        """The model's phrasing of ``g.text`` when it arrives within the timeout and passes the guard,
        else the template text."""
        with self._lock:
            self.calls += 1
        future = self._pool.submit(self._request, g)
        try:
            text = future.result(timeout=self.config.timeout_s)
        except FutureTimeout:
            future.cancel()
            return self._fail(g, "timeout")
        except Exception as exc:  # any transport or format failure falls back to the template
            return self._fail(g, f"endpoint error: {type(exc).__name__}")
        verdict = check_phrasing(text, g)
        if not verdict.ok:
            with self._lock:
                self.rejected += 1
            return Phrased(g.text, "template", verdict.violations)
        return Phrased(text, "llm")

    def _fail(self, g: Grounding, why: str) -> Phrased:
        with self._lock:
            self.failed += 1
        return Phrased(g.text, "template", (why,))

    def close(self) -> None:
        """Stop the worker threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def grounding_for(text: str, products: Sequence[Any], stated: Sequence[Any], brands: Sequence[str],
                  titles: Sequence[str]) -> Grounding:
    """A :class:`Grounding` from concierge products (``title``, ``price_minor``, ``reasons``, optional
    ``brand``) and stated constraints (``label()``, ``text``, ``kind``, ``value``)."""
    prods = tuple((p.title, getattr(p, "brand", None), p.price_minor, tuple(p.reasons)) for p in products)
    said = tuple((c.label(), c.text if c.text != "filter" else "") for c in stated)
    budgets = tuple(int(c.value) for c in stated if c.kind == "price" and isinstance(c.value, int)
                    and not isinstance(c.value, bool))
    return Grounding(text, prods, said, tuple(brands), tuple(titles), budgets)
