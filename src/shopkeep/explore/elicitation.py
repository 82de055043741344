"""Preference elicitation for new shoppers: up to three questions chosen by expected information gain.

The candidate weights (a prior over the catalog: popularity, a context prior or lookalike scores)
say where the shopper's next item probably is. :func:`catalog_facets` builds the askable questions
from the catalog — department, skin type, fragrance and budget band — each a :class:`Facet` whose
buckets are item masks. :class:`PreferenceElicitor` asks the question with the largest expected gain
(:class:`~shopkeep.explore.questions.QuestionSelector`) while it reaches ``min_gain_bits``, at most
``max_questions`` times; every answer reweights the candidates (items that do not match keep
``miss_weight`` of their weight, so a wrong answer is recoverable). :func:`answers_to_preferences`
turns answers into zero-party preferences for the profile (:meth:`save_answers`).

>>> import numpy as np
>>> from shopkeep.explore.questions import Facet
>>> toys = np.array([True, True, False, False])
>>> facets = [Facet("department", "What are you shopping for?", {"toys": toys, "beauty": ~toys})]
>>> el = PreferenceElicitor(min_gain_bits=0.5, k=1)
>>> q = el.next_question(facets, np.ones(4), {})
>>> q.slot, q.options
('department', ('toys', 'beauty'))
>>> el.reweight(facets, np.ones(4), {"department": "toys"}).tolist()
[1.0, 1.0, 0.05, 0.05]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.errors import ValidationError
from shopkeep.explore.questions import Facet, Question, QuestionSelector
from shopkeep.profiles import ProfileRepository
from shopkeep.profiles.model import Profile
from shopkeep.types import Money

__all__ = ["NO_PREFERENCE", "PreferenceElicitor", "answers_to_preferences", "budget_band", "catalog_facets"]

F64 = npt.NDArray[np.float64]
#: The answer "I don't mind": it reweights nothing and stores no preference.
NO_PREFERENCE = "no_preference"
_BANDS = ("under_{lo}", "{lo}_to_{hi}", "over_{hi}")


def budget_band(snapshot: CatalogSnapshot) -> tuple[int, int]:
    """The catalog's price tertile edges in minor units (items without a price ignored)."""
    price = snapshot.price_minor[snapshot.price_minor >= 0]
    if price.size < 3:
        raise ValidationError("catalog", int(price.size), "needs at least three priced items for a budget question")
    lo, hi = (int(math.ceil(float(np.quantile(price, q)) / 100.0) * 100) for q in (1 / 3, 2 / 3))
    return lo, max(hi, lo + 100)


def _budget_facet(snapshot: CatalogSnapshot) -> Facet | None:
    try:
        lo, hi = budget_band(snapshot)
    except ValidationError:
        return None
    p = snapshot.price_minor
    names = [b.format(lo=lo // 100, hi=hi // 100) for b in _BANDS]
    buckets = {names[0]: (p >= 0) & (p < lo), names[1]: (p >= lo) & (p < hi), names[2]: p >= hi}
    return Facet("budget", "What would you like to spend on one item?", buckets)


def catalog_facets(snapshot: CatalogSnapshot) -> list[Facet]:
    """The elicitation questions this catalog supports (a facet whose answers split nothing is dropped)."""
    facets: list[Facet] = []
    departments = sorted({path[0] for path in snapshot.category_paths if path})
    if len(departments) > 1:
        facets.append(Facet("department", "What are you shopping for today?",
                            {d.lower(): snapshot.category_mask(d) for d in departments}))
    skin = {v: snapshot.attribute_mask("skin_type", v) for v in ("dry", "oily", "combination", "sensitive", "normal")}
    skin = {v: m for v, m in skin.items() if m.any()}
    if len(skin) > 1:
        facets.append(Facet("skin_type", "What is your skin type?", skin))
    free = snapshot.attribute_mask("fragrance_free", True)
    scented = snapshot.attribute_mask("fragrance_free", False)
    if free.any() and scented.any():
        # "no preference" keeps every item, so it is not a bucket; the two answers split the rest
        facets.append(Facet("fragrance_free", "Do you prefer fragrance-free products?",
                            {"true": free, "false": scented}))
    budget = _budget_facet(snapshot)
    if budget is not None:
        facets.append(budget)
    return facets


def answers_to_preferences(answers: Mapping[str, str], snapshot: CatalogSnapshot) -> tuple[
        dict[str, list[str]], Money | None]:
    """Zero-party preferences (key → values) and a budget cap from elicitation ``answers``."""
    prefs: dict[str, list[str]] = {}
    budget: Money | None = None
    for slot, answer in answers.items():
        if answer == NO_PREFERENCE:
            continue
        if slot == "budget":
            lo, hi = budget_band(snapshot)
            if not answer.startswith("over_"):
                cap = lo if answer.startswith("under_") else hi
                budget = Money(cap, snapshot.currency or "USD")
        else:
            prefs[slot] = [str(answer).lower()]
    return prefs, budget


class PreferenceElicitor:
    """Chooses elicitation questions and folds answers into candidate weights (module docstring)."""

    def __init__(self, min_gain_bits: float = 0.5, max_questions: int = 3, k: int = 10,
                 miss_weight: float = 0.05, pool: int = 500) -> None:
        if not 0.0 <= miss_weight <= 1.0:
            raise ValidationError("miss_weight", miss_weight, "must be within [0, 1]")
        if pool < 1:
            raise ValidationError("pool", pool, "must be >= 1")
        self.selector = QuestionSelector(min_gain_bits=min_gain_bits, max_questions=max_questions, k=k)
        self.miss_weight = miss_weight
        self.pool = pool

    def _pooled(self, weights: F64) -> F64:
        """The ``pool`` heaviest candidates keep their weight; the long tail is zero (it barely moves the gain)."""
        w = np.asarray(weights, dtype=np.float64)
        if w.size <= self.pool:
            return np.maximum(w, 0.0)
        keep = np.argpartition(-w, self.pool - 1)[: self.pool]
        out = np.zeros_like(w)
        out[keep] = np.maximum(w[keep], 0.0)
        return out

    def reweight(self, facets: Sequence[Facet], weights: F64, answers: Mapping[str, str]) -> F64:
        """``weights`` with every item that misses an answer scaled by ``miss_weight``."""
        w = np.asarray(weights, dtype=np.float64).copy()
        by_slot = {f.slot: f for f in facets}
        for slot, answer in answers.items():
            facet = by_slot.get(slot)
            if facet is None or answer not in facet.buckets:
                continue  # "no preference" or an answer this catalog cannot use
            w = np.where(np.asarray(facet.buckets[answer]), w, w * self.miss_weight)
        return w

    def next_question(self, facets: Sequence[Facet], weights: F64, answers: Mapping[str, str]) -> Question | None:
        """The question worth asking now given the answers so far, or None (stop)."""
        w = self._pooled(self.reweight(facets, weights, answers))
        return self.selector.choose(facets, w, asked=list(answers))

    def elicit(self, facets: Sequence[Facet], weights: F64,
               answer: Mapping[str, str] | None = None) -> tuple[dict[str, str], F64]:
        """Ask until the selector stops; ``answer`` (slot → answer, e.g. a simulated shopper's truth)
        answers each question (a slot it lacks is answered :data:`NO_PREFERENCE`, which changes no
        weight). Returns the answers and the final weights."""
        answers: dict[str, str] = {}
        truth = answer or {}
        while (q := self.next_question(facets, weights, answers)) is not None:
            answers[q.slot] = truth.get(q.slot, NO_PREFERENCE)
        return answers, self.reweight(facets, weights, answers)

    @staticmethod
    def save_answers(repo: ProfileRepository, user_id: str, answers: Mapping[str, str],
                     snapshot: CatalogSnapshot) -> Profile:
        """Persist ``answers`` as the shopper's zero-party preferences (and budget cap)."""
        prefs, budget = answers_to_preferences(answers, snapshot)
        if not repo.get_many([user_id]):
            repo.upsert(Profile(user_id))
        return repo.set_preferences(user_id, prefs, budget_max=budget)
