"""Simulated shoppers with hidden goals, to compare ask policies of the concierge.

A goal is drawn from a catalog item (the target): its leaf category, one of its skin types (when it
has any), fragrance-free (when it is, with probability 1/2) and a budget of its price rounded up to
whole units plus 20 %. The shopper opens with the category only ("I need a moisturizer"), answers
each question truthfully — the option that holds for the target on a slot of its goal, else
"no preference" — and stops at the first answer with products. Success: some shown product
satisfies every goal constraint.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from shopkeep.concierge.assistant import Concierge, ConciergeMessage
from shopkeep.concierge.facets import constraint_from_dict
from shopkeep.search import Constraint, ParsedQuery, Searcher
from shopkeep.search.filters import constraints_mask
from shopkeep.search.vocab import words
from shopkeep.storage import open_store

__all__ = ["PolicyResult", "draw_goals", "simulate"]


@dataclass(frozen=True)
class PolicyResult:
    """One ask policy over the simulated shoppers."""

    policy: str
    shoppers: int
    success: float
    mean_turns: float
    success_per_turn: float
    violations: int


def draw_goals(searcher: Searcher, n: int, seed: int) -> list[tuple[int, list[Constraint]]]:
    """``n`` (target row, goal constraints) pairs from priced, categorized items."""
    snap, rng = searcher.snapshot_, random.Random(seed)
    rows = [r for r in range(snap.n) if snap.category_paths[r] and snap.price_minor[r] > 0]
    out = []
    for r in rng.sample(rows, min(n, len(rows))):
        attrs = searcher.table_.attributes(r)
        leaf = snap.category_paths[r][-1]
        goal = [Constraint("category", "category", "=", " ".join(words(leaf)), leaf.lower()),
                Constraint("price", "price", "<=", math.ceil(int(snap.price_minor[r]) * 1.2 / 100) * 100, "budget")]
        skin = attrs.get("skin_type")
        if isinstance(skin, tuple) and skin:
            goal.append(Constraint("attribute", "skin_type", "=", str(rng.choice(skin)), "skin"))
        if attrs.get("fragrance_free") is True and rng.random() < 0.5:
            goal.append(Constraint("attribute", "fragrance_free", "=", True, "fragrance-free"))
        out.append((r, goal))
    return out


def _answer(bot: Concierge, cid: str, target: int, goal: list[Constraint], searcher: Searcher) -> str:
    pending = bot.state(cid)["pending"]
    keys = {c.key for c in goal} | {"budget" for c in goal if c.kind == "price"}
    if pending is None or pending["slot"] not in keys:
        return "no preference"
    target_only = searcher.snapshot_.active.copy()
    target_only[:] = False
    target_only[target] = True
    for label, cons in pending["options"].items():
        pq = ParsedQuery("", "", tuple(constraint_from_dict(d) for d in cons))
        if cons and constraints_mask(searcher.masks_, pq, target_only)[target]:
            return str(label)
    return "no preference"


def simulate(searcher: Searcher, policy: str, goals: list[tuple[int, list[Constraint]]],
             max_turns: int = 5) -> PolicyResult:
    """Run every goal's shopper against a fresh concierge with ask ``policy``."""
    bot = Concierge(open_store("memory://"), lambda: (searcher, None), ask=policy)
    wins = turns = violations = 0
    for n, (target, goal) in enumerate(goals):
        cid = f"sim{n}"
        goal_mask = constraints_mask(searcher.masks_, ParsedQuery("", "", tuple(goal)), searcher.snapshot_.active)
        message = f"I need a {goal[0].text}"
        for turn in range(1, max_turns + 1):
            reply = bot.reply(ConciergeMessage(cid, message, anonymous_id=cid))
            stated = constraints_mask(searcher.masks_, ParsedQuery("", "", reply.slots), searcher.snapshot_.active)
            rows = [searcher.snapshot_.index[p.item_id] for p in reply.products]
            violations += sum(1 for r in rows if not stated[r])
            if reply.question is None:
                wins += any(goal_mask[r] for r in rows)
                turns += turn
                break
            message = _answer(bot, cid, target, goal, searcher)
        else:
            turns += max_turns
    k = max(len(goals), 1)
    success, mean_turns = wins / k, turns / k
    return PolicyResult(policy, len(goals), round(success, 4), round(mean_turns, 3),
                        round(success / mean_turns if mean_turns else 0.0, 4), violations)
