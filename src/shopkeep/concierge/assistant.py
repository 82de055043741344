"""The shopping concierge: multi-turn slot filling over the search parser, questions by information gain.

Each turn: load the conversation (Store collection ``conversations``); read the message — an answer
to the pending question (an option, "no preference", or free words parsed by the search parser) or
a new request parsed into hard constraints; merge them into the slots (a new value of a slot replaces
the old one); find the candidates that satisfy every slot; then either ask the question with the
highest expected information gain (:class:`~shopkeep.concierge.questions.QuestionSelector`) or answer
with products from search (or, with no constraint at all, from the recommender). Every product
answered is checked again against every stated constraint, and when nothing satisfies them all the
concierge names the constraint to drop instead of showing products that break one. Reasons quote the
item's own data (attributes, price, stock, rating). With the shopper's consent (a profile whose
``consent.personalization`` is on) stated skin type, exclusions and budget are saved as zero-party
preferences. No language model is involved. With a ``fit`` function (the engine's returns-aware fit
model), a sized product's reasons end with the shopper's fit note ("this brand runs small: your usual
9 → 9.5").
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shopkeep.catalog.snapshot import CatalogSnapshot, Mask
from shopkeep.concierge.facets import build_facets, constraint_from_dict, constraint_to_dict
from shopkeep.concierge.phrasing import LLMPhraser, grounding_for
from shopkeep.concierge.questions import Question, QuestionSelector
from shopkeep.concierge.reasons import reasons_for
from shopkeep.errors import ValidationError
from shopkeep.features.context import Context
from shopkeep.profiles.repository import ProfileRepository
from shopkeep.search import Constraint, Searcher, SearchPolicy, SearchRequest
from shopkeep.search.filters import constraints_mask
from shopkeep.search.vocab import words
from shopkeep.storage.base import DocumentStore
from shopkeep.types import Money

__all__ = ["ASK_POLICIES", "COLLECTION", "Concierge", "ConciergeMessage", "ConciergeProduct", "ConciergeReply"]

COLLECTION = "conversations"
#: never: answer at once; always: ask up to the question budget; gain: ask only when informative.
ASK_POLICIES = ("gain", "never", "always")
_NO_PREF = re.compile(r"\b(no preference|any|anything|doesn'?t matter|does not matter|don'?t care|either|"
                      r"whatever|skip|not sure|no idea|all)\b")
_INTRO = "Hi, I'm shopkeep's automated shopping assistant (not a person). "
ViewFn = Callable[[], tuple[Searcher, SearchPolicy | None]]
ContextFn = Callable[[str | None, str | None, str | None], Context | None]
RecommendFn = Callable[[str | None, str | None, int], Sequence[str]]
#: (user_id, anonymous_id, item_id) -> the shopper's fit note for the item, or None.
FitNoteFn = Callable[[str | None, str | None, str], str | None]


@dataclass(frozen=True)
class ConciergeMessage:
    """One shopper message in a conversation."""

    conversation_id: str
    message: str
    user_id: str | None = None
    anonymous_id: str | None = None
    store: str | None = None
    save_preferences: bool = True


@dataclass(frozen=True)
class ConciergeProduct:
    """A product answered, with the reasons taken from its data."""

    item_id: str
    title: str
    price_minor: int | None
    currency: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class ConciergeReply:
    """The concierge's answer to one message."""

    conversation_id: str
    reply: str
    products: tuple[ConciergeProduct, ...]
    slots: tuple[Constraint, ...]
    question: Question | None
    turn: int
    automated: bool = True
    saved_preferences: Mapping[str, Any] = field(default_factory=dict)
    suggestion: str | None = None
    #: who worded ``reply``: ``template`` or ``llm`` (the optional phrasing adapter, guarded)
    phrased_by: str = "template"
    #: why a model phrasing was refused (guard violations, timeout, endpoint error)
    phrasing_refused: tuple[str, ...] = ()


def _check(msg: ConciergeMessage) -> None:
    if not isinstance(msg.conversation_id, str) or not 0 < len(msg.conversation_id) <= 128:
        raise ValidationError("conversation_id", msg.conversation_id, "must be a string of 1 to 128 characters")
    if not isinstance(msg.message, str) or not msg.message.strip() or len(msg.message) > 1000:
        raise ValidationError("message", msg.message, "must be a non-empty string of at most 1000 characters")
    if msg.user_id is None and msg.anonymous_id is None:
        raise ValidationError("anonymous_id", None, "give user_id or anonymous_id")


def merge_slots(slots: Sequence[Constraint], new: Sequence[Constraint]) -> list[Constraint]:
    """``slots`` updated by ``new``: a constraint on the same (kind, key, op) replaces the old one."""
    out = list(slots)
    for c in new:
        same = (lambda o, c=c: o.kind == c.kind == "category") if c.kind == "category" else (
            lambda o, c=c: (o.kind, o.key, o.op) == (c.kind, c.key, c.op))
        out = [o for o in out if not same(o)] + [c]
    return out


class Concierge:
    """Answers concierge messages over a searcher view (see the module docstring)."""

    def __init__(self, store: DocumentStore, view: ViewFn, *, profiles: ProfileRepository | None = None,
                 context: ContextFn | None = None, recommend: RecommendFn | None = None,
                 selector: QuestionSelector | None = None, ask: str = "gain", k: int = 5,
                 phraser: LLMPhraser | str | None = "env", fit: FitNoteFn | None = None) -> None:
        if ask not in ASK_POLICIES:
            raise ValidationError("ask", ask, f"must be one of {', '.join(ASK_POLICIES)}")
        self.store = store
        self.view = view
        self.profiles = profiles
        self.context = context
        self.recommend = recommend
        self.selector = selector or QuestionSelector(min_gain_bits=1.2, k=3 * k)
        self.ask = ask
        self.k = k
        #: optional model phrasing (off unless $SHOPKEEP_CONCIERGE_LLM_URL is set or a phraser is given)
        self.phraser = LLMPhraser.from_env() if phraser == "env" else phraser
        self.fit = fit

    # -- state ---------------------------------------------------------------------------------
    def state(self, conversation_id: str) -> dict[str, Any]:
        """The stored state of a conversation (empty when new)."""
        doc = self.store.get_many(COLLECTION, [conversation_id]).get(conversation_id)
        return dict(doc) if doc else {"slots": [], "text": "", "asked": [], "pending": None, "turns": 0}

    def reset(self, conversation_id: str) -> bool:
        """Forget a conversation; True when it existed."""
        return self.store.delete_many(COLLECTION, [conversation_id]) > 0

    # -- one turn ------------------------------------------------------------------------------
    def reply(self, msg: ConciergeMessage) -> ConciergeReply:
        """Answer one message (state read, updated and written back)."""
        _check(msg)
        searcher, policy = self.view()
        st = self.state(msg.conversation_id)
        owner = msg.user_id or msg.anonymous_id
        if st.get("owner") not in (None, owner):
            raise ValidationError("conversation_id", msg.conversation_id, "belongs to another shopper")
        slots = [constraint_from_dict(d) for d in st["slots"]]
        asked: list[str] = list(st["asked"])
        text: str = st["text"]
        new, exact, free = self._read(searcher, msg.message, st.get("pending"))
        if st.get("pending"):
            asked.append(st["pending"]["slot"])
        if free:
            text = free
        slots = merge_slots(slots, new)
        turn = int(st["turns"]) + 1
        ctx = self.context(msg.user_id, msg.anonymous_id, msg.store) if self.context else None
        saved = self._save(msg, new) if new and msg.save_preferences else {}
        out = self._respond(searcher, policy, ctx, msg, slots, text, asked, exact)
        pending = None
        if out.question is not None:
            opts = dict(out.question_options)
            pending = {"slot": out.question.slot, "options": opts}
        st.update(slots=[constraint_to_dict(c) for c in slots], text=text, asked=asked, pending=pending,
                  turns=turn, owner=owner)
        self.store.put_many(COLLECTION, {msg.conversation_id: st})
        intro = _INTRO if turn == 1 else ""
        text, source = intro + out.text, "template"
        refused: tuple[str, ...] = ()
        if isinstance(self.phraser, LLMPhraser):
            snap = searcher.snapshot_
            titles = [it.title for it in snap.items]
            phrased = self.phraser.phrase(grounding_for(text, out.products, slots, list(snap.brands), titles))
            text, source, refused = phrased.text, phrased.source, phrased.violations
        return ConciergeReply(msg.conversation_id, text, out.products, tuple(slots), out.question, turn,
                              True, saved, out.suggestion, source, refused)

    def _read(self, searcher: Searcher, message: str,
              pending: Mapping[str, Any] | None) -> tuple[list[Constraint], str | None, str]:
        """Constraints stated by ``message``, an exact item hit, and its free text."""
        folded = " " + " ".join(words(message)) + " "
        if pending:
            options: Mapping[str, list[dict[str, Any]]] = pending["options"]
            for label in sorted(options, key=len, reverse=True):
                if f" {' '.join(words(label))} " in folded:
                    return [constraint_from_dict(d) for d in options[label]], None, ""
            if _NO_PREF.search(folded):
                return [], None, ""
        parsed = searcher.parse([message])[0]
        return list(parsed.constraints), parsed.exact_item_id, parsed.text

    def _save(self, msg: ConciergeMessage, new: Sequence[Constraint]) -> dict[str, Any]:
        """Stated budget, skin type and exclusions → the profile, when the shopper consented."""
        if self.profiles is None or msg.user_id is None:
            return {}
        profile = self.profiles.get_many([msg.user_id]).get(msg.user_id)
        if profile is None or not profile.consent.personalization:
            return {}
        prefs: dict[str, list[str]] = {}
        avoid: dict[str, list[str]] = {}
        budget: Money | None = None
        for c in new:
            if c.kind == "attribute" and isinstance(c.value, bool) and "|" not in c.key:
                (avoid if c.value else prefs).setdefault(c.key, []).append("false" if c.value else "true")
            elif c.kind == "attribute" and "|" not in c.key:
                prefs.setdefault(c.key, []).append(str(c.value))
            elif c.kind == "price" and c.op in ("<=", "<") and isinstance(c.value, int):
                budget = Money(int(c.value), profile.budget_max.currency if profile.budget_max else "USD")
        if not (prefs or avoid or budget):
            return {}
        if prefs.keys() & avoid.keys():
            prefs = {k: v for k, v in prefs.items() if k not in avoid}
        self.profiles.set_preferences(msg.user_id, prefs, avoid=avoid, budget_max=budget)
        out: dict[str, Any] = {"preferences": prefs, "avoid": avoid}
        if budget is not None:
            out["budget_max"] = budget.to_dict()
        return out

    def _respond(self, searcher: Searcher, policy: SearchPolicy | None, ctx: Context | None,
                 msg: ConciergeMessage, slots: list[Constraint], text: str, asked: list[str],
                 exact: str | None) -> _Outcome:
        snap = searcher.snapshot_
        base = policy.eligibility(snap, ctx) if policy is not None and ctx is not None else snap.active.copy()
        if exact is not None and base[snap.index[exact]]:
            product = self._product(searcher, snap, snap.index[exact], [], msg)
            return _Outcome("Here it is.", (product,))
        if not slots and not text:
            return self._recommend(searcher, snap, base, msg)
        from shopkeep.search.query import ParsedQuery

        mask = constraints_mask(searcher.masks_, ParsedQuery("", "", tuple(slots)), base, msg.store)
        n = int(mask.sum())
        if n == 0:
            return self._nothing(searcher, slots, base, msg.store)
        question = self._question(searcher, snap, mask, slots, asked)
        if question is not None:
            q, options = question
            return _Outcome(f"{q.text} ({', '.join(q.options)}, or no preference)", (), q, options)
        products = self._search(searcher, policy, ctx, msg, slots, text, mask)
        said = "; ".join(_say(c) for c in slots)
        head = f"{n} product{'s' if n != 1 else ''} match" + ("es" if n == 1 else "") + (f" {said}" if said else "")
        return _Outcome(f"{head}. Here are the top {len(products)}.", products)

    def _question(self, searcher: Searcher, snap: CatalogSnapshot, mask: Mask, slots: list[Constraint],
                  asked: list[str]) -> tuple[Question, list[tuple[str, list[dict[str, Any]]]]] | None:
        if self.ask == "never":
            return None
        rows = np.flatnonzero(mask)
        facets, answers = build_facets(searcher.table_, snap, rows, slots)
        weights = np.ones(rows.size)
        if self.ask == "always":
            picky = QuestionSelector(min_gain_bits=1e-9, max_questions=self.selector.max_questions, k=0)
            q = picky.choose(facets, weights, asked)
        else:
            q = self.selector.choose(facets, weights, asked)
        if q is None:
            return None
        return q, [(a, [constraint_to_dict(c) for c in answers[q.slot][a]]) for a in q.options]

    def _search(self, searcher: Searcher, policy: SearchPolicy | None, ctx: Context | None, msg: ConciergeMessage,
                slots: list[Constraint], text: str, mask: Mask) -> tuple[ConciergeProduct, ...]:
        snap = searcher.snapshot_
        query, filters = _request_parts(slots, text)
        res = searcher.search(SearchRequest(query, k=max(self.k * 4, 20), filters=filters, store=msg.store),
                              ctx, policy)
        out = []
        for hit in res.items:
            i = snap.index.get(hit.item_id, -1)
            if i < 0 or not mask[i] or res.relaxed:
                continue  # the guard: never answer an item that breaks a stated constraint
            out.append(self._product(searcher, snap, i, slots, msg, hit.price_minor))
            if len(out) >= self.k:
                break
        if len(out) < self.k:  # the search ranked too few of the matches: fill from the mask by rating
            seen = {p.item_id for p in out}
            rows = [r for r in np.flatnonzero(mask).tolist() if snap.item_ids[r] not in seen]
            rows.sort(key=lambda r: -float(np.nan_to_num(snap.rating[r], nan=0.0)))
            out += [self._product(searcher, snap, r, slots, msg) for r in rows[: self.k - len(out)]]
        return tuple(out)

    def _product(self, searcher: Searcher, snap: CatalogSnapshot, i: int, slots: Sequence[Constraint],
                 msg: ConciergeMessage, price: int | None = None) -> ConciergeProduct:
        it = snap.items[i]
        p = price if price is not None else (int(snap.price_minor[i]) if snap.price_minor[i] >= 0 else None)
        note = self.fit(msg.user_id, msg.anonymous_id, it.item_id) if self.fit is not None else None
        return ConciergeProduct(it.item_id, it.title, p, snap.currency,
                                reasons_for(it, searcher.table_.attributes(i), slots, snap.currency, msg.store, p,
                                            fit_note=note))

    def _recommend(self, searcher: Searcher, snap: CatalogSnapshot, base: Mask,
                   msg: ConciergeMessage) -> _Outcome:
        if self.recommend is None:
            return _Outcome("What are you shopping for? Tell me the product, your budget and any must-haves.", ())
        ids = [i for i in self.recommend(msg.user_id, msg.anonymous_id, self.k) if i in snap.index]
        rows = [snap.index[i] for i in ids if base[snap.index[i]]]
        products = tuple(self._product(searcher, snap, r, [], msg) for r in rows[: self.k])
        return _Outcome("Here are some picks for you. Tell me what you are looking for to narrow them down.",
                        products)

    def _nothing(self, searcher: Searcher, slots: list[Constraint], base: Mask, store: str | None) -> _Outcome:
        from shopkeep.search.filters import relax
        from shopkeep.search.query import ParsedQuery

        found = relax(searcher.masks_, ParsedQuery("", "", tuple(slots)), base, store)
        said = "; ".join(_say(c) for c in slots)
        if not found.dropped or not found.mask.any():
            return _Outcome(f"Nothing in the catalog matches {said}.", ())
        drop = ", ".join(_say(c) for c in found.dropped)
        n = int(found.mask.sum())
        return _Outcome(f"Nothing matches all of: {said}. Without {drop}, {n} products would match — "
                        "shall I drop it?", (), suggestion=drop)


@dataclass(frozen=True)
class _Outcome:
    text: str
    products: tuple[ConciergeProduct, ...]
    question: Question | None = None
    question_options: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    suggestion: str | None = None


def _say(c: Constraint) -> str:
    if c.kind == "price" and isinstance(c.value, int) and c.op not in ("cheap", "premium"):
        return f"price {c.op} {c.value / 100:.2f}"
    if c.kind == "attribute" and isinstance(c.value, bool):
        return c.key.replace("_", "-") if c.value else f"not {c.key.replace('_', '-')}"
    return c.text if c.text and c.text != "filter" else c.label()


def _request_parts(slots: Sequence[Constraint], text: str) -> tuple[str, dict[str, Any]]:
    """A search query and filters that carry ``slots`` (constraints no filter can say go as their words)."""
    filters: dict[str, Any] = {}
    attrs: dict[str, Any] = {}
    extra: list[str] = []
    for c in slots:
        if c.kind == "category" and "category" not in filters:
            filters["category"] = str(c.value)
        elif c.kind == "price" and isinstance(c.value, int) and c.op in ("<=", "<", ">=", ">"):
            key = "price_max" if c.op.startswith("<") else "price_min"
            filters[key] = c.value - (c.op == "<") + (c.op == ">")
        elif c.kind == "attribute" and "|" not in c.key and c.key not in attrs:
            attrs[c.key] = c.value
        elif c.kind == "availability" and c.key == "pickup":
            filters["pickup"] = True
        elif c.kind == "availability" and c.key == "in_stock":
            filters["in_stock"] = True
        elif c.kind == "availability" and c.key == "store":
            filters["store"] = str(c.value)
        elif c.text and c.text != "filter":
            extra.append(c.text)
    if attrs:
        filters["attributes"] = attrs
    query = " ".join([text, *extra]).strip() or str(filters.get("category", "")) or "products"
    return query, filters


def new_conversation_id() -> str:
    """A fresh conversation id."""
    return uuid.uuid4().hex
