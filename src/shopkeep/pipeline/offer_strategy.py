"""Offer strategies in the decision path: the ``offer_strategies`` document operators approve is obeyed.

An approved operator proposal (:mod:`shopkeep.pipeline.operators`) writes a versioned document
``{"campaigns": {campaign: {"disabled_actions": [...]}}, "version": n}`` to the Store. A
:class:`StrategyStack` is the offer :class:`~shopkeep.offers.decide.DecisionStack` that reads it (at
most every ``refresh_s`` seconds, so every API worker picks up an approval): an action disabled for
the request's campaign fails an ``offer_strategy`` verdict (code ``disabled_by_strategy``, naming the
campaign and the document version), so it is never chosen -- not by the greedy pick nor by the
randomized arm -- and the audit record shows why. ``no_action`` can never be disabled.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from shopkeep.offers.decide import Candidate, DecisionRequest, DecisionStack
from shopkeep.offers.guardrails import NO_ACTION, Verdict
from shopkeep.pipeline.operators import STRATEGIES
from shopkeep.storage.base import Store

__all__ = ["STRATEGY_RULE", "StrategyReader", "StrategyStack"]

#: The verdict rule name of a strategy refusal.
STRATEGY_RULE = "offer_strategy"


class StrategyReader:
    """The active offer-strategy document of ``store``, read again at most every ``refresh_s`` seconds."""

    def __init__(self, store: Store, *, refresh_s: float = 2.0) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self._doc: Mapping[str, Any] = {"campaigns": {}, "version": 0}
        self._read_at = -float("inf")
        self._lock = threading.Lock()

    def __call__(self) -> Mapping[str, Any]:
        """The document in force (``{"campaigns": {}, "version": 0}`` before any approval)."""
        now = time.monotonic()
        if now - self._read_at >= self.refresh_s:
            with self._lock:
                if now - self._read_at >= self.refresh_s:
                    found = self.store.get_many(STRATEGIES, ["active"]).get("active")
                    self._doc = dict(found) if found else {"campaigns": {}, "version": 0}
                    self._read_at = now
        return self._doc


def disabled_actions(doc: Mapping[str, Any], campaign: str) -> set[str]:
    """The actions ``doc`` disables for ``campaign``.

    >>> sorted(disabled_actions({"campaigns": {"spring": {"disabled_actions": ["pct_10"]}}}, "spring"))
    ['pct_10']
    """
    camp = (doc.get("campaigns") or {}).get(campaign) or {}
    return {str(a) for a in camp.get("disabled_actions", [])} - {NO_ACTION}


@dataclass
class StrategyStack(DecisionStack):
    """A decision stack that refuses the actions the offer strategy disables (module docstring)."""

    strategies: StrategyReader | None = field(default=None)

    def score(self, req: DecisionRequest) -> list[Candidate]:
        """:meth:`DecisionStack.score`, with a failed ``offer_strategy`` verdict on disabled actions."""
        cands = super().score(req)
        if self.strategies is None:
            return cands
        doc = self.strategies()
        off = disabled_actions(doc, req.campaign)
        if not off:
            return cands
        detail = f"disabled for campaign {req.campaign!r} by offer strategy v{doc.get('version')}"
        return [replace(c, allowed=False, verdicts=(*c.verdicts, Verdict(STRATEGY_RULE, False, "disabled_by_strategy",
                                                                         detail)))
                if c.action in off else c for c in cands]
