"""Greedy slate construction: pins, diversity caps, new-item floors and MMR novelty, position by position.

At each free position the builder takes, among candidates still unplaced, the best one that keeps
every diversity cap of the top K (caps are relaxed — and the relaxation traced — only when no
candidate fits); a new-item floor narrows the choice to new items when the remaining free slots of
its top K are just enough to reach the floor; inside a novelty rule's top K the choice maximizes
λ·relevance − (1 − λ)·max similarity (same variant group = 1, same brand = ½, same leaf category = ½).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.policy.model import DAY_MS, DiversityRule, NewItemFloorRule, NoveltyRule, PolicySet, RuleFiring

__all__ = ["SlateBuilder", "diversity_codes", "new_item_mask", "similarity"]

_I64 = npt.NDArray[np.int64]
_F64 = npt.NDArray[np.float64]
_B = npt.NDArray[np.bool_]


def diversity_codes(snapshot: CatalogSnapshot, rule: DiversityRule, idx: _I64,
                    vocab: dict[str, int] | None = None) -> _I64:
    """The cap key of each item of ``idx`` under ``rule`` (-1: no key, never capped). Category codes
    come from ``vocab`` (grown in place): pass the same dict to compare codes across calls."""
    if rule.by == "brand":
        return snapshot.brand[idx].astype(np.int64)
    if rule.by == "group":
        return snapshot.group[idx].astype(np.int64)
    codes: dict[str, int] = {} if vocab is None else vocab
    out = np.full(len(idx), -1, dtype=np.int64)
    for j, i in enumerate(idx.tolist()):
        path = snapshot.category_paths[i]
        if -len(path) <= rule.level < len(path):
            out[j] = codes.setdefault(path[rule.level].strip().lower(), len(codes))
    return out


_LEVEL_CODES: dict[tuple[int, int], tuple[CatalogSnapshot, _I64]] = {}


def _level_codes(snapshot: CatalogSnapshot, level: int) -> _I64:
    """The category code at ``level`` of every snapshot item (-1: none), computed once per snapshot:
    two items share a code exactly when :func:`diversity_codes` would give them the same one."""
    key = (id(snapshot), level)
    found = _LEVEL_CODES.get(key)
    if found is not None and found[0] is snapshot:
        return found[1]
    rule = DiversityRule("level", "category", 1, 1, level)
    codes = diversity_codes(snapshot, rule, np.arange(snapshot.n, dtype=np.int64))
    if len(_LEVEL_CODES) >= 8:
        _LEVEL_CODES.clear()
    _LEVEL_CODES[key] = (snapshot, codes)
    return codes


def _codes(snapshot: CatalogSnapshot, rule: DiversityRule, idx: _I64) -> _I64:
    """:func:`diversity_codes` for the slate builder (category codes from the per-snapshot cache)."""
    if rule.by == "category":
        return _level_codes(snapshot, rule.level)[idx]
    return diversity_codes(snapshot, rule, idx)


def new_item_mask(snapshot: CatalogSnapshot, rule: NewItemFloorRule, idx: _I64, now_ms: int) -> _B:
    """Whether each item of ``idx`` is younger than ``rule.max_age_days`` at ``now_ms``."""
    created = snapshot.created_ms[idx]
    out: _B = (created >= 0) & (now_ms - created < rule.max_age_days * DAY_MS)
    return out


def _leaf_codes(snapshot: CatalogSnapshot, idx: _I64, vocab: dict[str, int] | None = None) -> _I64:
    rule = DiversityRule("leaf", "category", 1, 1, -1)
    return diversity_codes(snapshot, rule, idx, vocab)


def similarity(snapshot: CatalogSnapshot, idx: _I64, other: int) -> _F64:
    """MMR similarity of each item of ``idx`` to item ``other``: 1 same group, else ½ brand + ½ leaf category."""
    both = np.concatenate([idx, np.asarray([other], dtype=np.int64)])
    leaf = _leaf_codes(snapshot, both)
    return _sim(snapshot.group[idx], snapshot.brand[idx], leaf[:-1], int(snapshot.group[other]),
                int(snapshot.brand[other]), int(leaf[-1]))


def _sim(gr: npt.NDArray[np.int32], br: npt.NDArray[np.int32], leaf: _I64, g: int, b: int, c: int) -> _F64:
    same_group = (gr == g) & (g >= 0)
    part = 0.5 * ((br == b) & (b >= 0)) + 0.5 * ((leaf == c) & (c >= 0))
    out: _F64 = np.where(same_group, 1.0, part)
    return out


class SlateBuilder:
    """Builds one slate from eligible candidates (snapshot indices ``idx`` with final ``score``)."""

    def __init__(self, snapshot: CatalogSnapshot, policy: PolicySet, now_ms: int, idx: _I64, score: _F64) -> None:
        self.snapshot, self.policy, self.now_ms = snapshot, policy, now_ms
        self.idx, self.score = idx, score

    def build(self, k: int, pins: Sequence[tuple[str, int, int]], trace: list[RuleFiring]) -> list[
            tuple[int, int, str]]:
        """(position, snapshot index, reason) for each slot; ``pins`` are (rule id, position, index)."""
        keep = ~np.isin(self.idx, np.asarray([i for _, _, i in pins], dtype=np.int64))
        cand, score = self.idx[keep], self.score[keep]
        order = np.lexsort((np.arange(len(cand)), -score))
        self.cand, self.cscore = cand[order], score[order]
        n_total = min(k, len(self.cand) + len(pins))
        slots = self._place_pins(pins, n_total, trace)
        self._prepare()
        out: list[tuple[int, int, str]] = []
        for p in range(n_total):
            if p in slots:
                rule_id, i = slots[p]
                self._placed(p, i, None)
                out.append((p, i, f"pin:{rule_id}"))
            else:
                j, why = self._choose(p, slots, n_total, trace)
                self._placed(p, int(self.cand[j]), j)
                out.append((p, int(self.cand[j]), why))
        return out

    def _place_pins(self, pins: Sequence[tuple[str, int, int]], n_total: int, trace: list[RuleFiring]) -> dict[
            int, tuple[str, int]]:
        slots: dict[int, tuple[str, int]] = {}
        # lowest requested position first (rule order on ties): a pin clamped to a short slate
        # must not take the exact slot another pin asked for
        for rule_id, want, i in sorted(pins, key=lambda pin: pin[1]):
            free = [p for p in range(n_total) if p not in slots]
            item_id = self.snapshot.item_ids[i]
            if not free:
                trace.append(RuleFiring(rule_id, "pin", item_id, "pin skipped: no room in the slate"))
                continue
            at = next((p for p in free if p >= want), free[-1])
            slots[at] = (rule_id, i)
            note = f"pinned at position {at}" + ("" if at == want else f" (asked {want})")
            trace.append(RuleFiring(rule_id, "pin", item_id, note))
        return slots

    def _prepare(self) -> None:
        snap, cand = self.snapshot, self.cand
        self.alive = np.ones(len(cand), dtype=np.bool_)
        self.caps: list[tuple[DiversityRule, _I64, _B, dict[int, int]]] = [
            (r, _codes(snap, r, cand), np.zeros(len(cand), dtype=np.bool_), {}) for r in self.policy.of(DiversityRule)]
        self.floors: list[tuple[NewItemFloorRule, _B, list[int]]] = [
            (r, new_item_mask(snap, r, cand, self.now_ms), [0]) for r in self.policy.of(NewItemFloorRule)]
        novelty = self.policy.of(NoveltyRule)
        self.novelty: NoveltyRule | None = novelty[0] if novelty else None
        s = self.cscore
        span = float(s.max() - s.min()) if len(s) else 0.0
        self.rel = (s - s.min()) / span if span > 0 else np.ones(len(s))
        self.maxsim = np.zeros(len(cand))
        self.leaf = _level_codes(snap, -1)[cand]
        self.group_c, self.brand_c = snap.group[cand], snap.brand[cand]
        self.held: set[tuple[str, int]] = set()

    def _placed(self, p: int, i: int, j: int | None) -> None:
        snap = self.snapshot
        one = np.asarray([i], dtype=np.int64)
        if j is not None:
            self.alive[j] = False
        for cap, codes, blocked, counts in self.caps:
            code = int(codes[j]) if j is not None else int(_codes(snap, cap, one)[0])
            if p < cap.top_k and code >= 0:
                counts[code] = counts.get(code, 0) + 1
                if counts[code] >= cap.max_per:
                    blocked |= codes == code
        for rule, _, count in self.floors:
            if p < rule.top_k and new_item_mask(snap, rule, one, self.now_ms)[0]:
                count[0] += 1
        if self.novelty is not None and len(self.cand):
            leaf = int(_level_codes(snap, -1)[i])
            sim = _sim(self.group_c, self.brand_c, self.leaf, int(snap.group[i]), int(snap.brand[i]), leaf)
            np.maximum(self.maxsim, sim, out=self.maxsim)

    def _forced(self, p: int, slots: dict[int, tuple[str, int]], n_total: int) -> tuple[NewItemFloorRule, _B] | None:
        for rule, is_new, count in self.floors:
            if p >= rule.top_k:
                continue
            need = rule.min_slots - count[0]
            free = sum(1 for q in range(p, min(rule.top_k, n_total)) if q not in slots)
            if need > 0 and need >= free and (self.alive & is_new).any():
                return rule, is_new
        return None

    def _choose(self, p: int, slots: dict[int, tuple[str, int]], n_total: int, trace: list[RuleFiring]) -> tuple[
            int, str]:
        alive = self.alive
        cap_ok = np.ones(len(alive), dtype=np.bool_)
        for rule, _, blocked, _ in self.caps:
            if p < rule.top_k:
                cap_ok &= ~blocked
        ok = alive & cap_ok
        forced = self._forced(p, slots, n_total)
        choice = ok & forced[1] if forced is not None else ok
        if forced is not None and not choice.any():
            forced, choice = None, ok  # the floor yields to the diversity caps
        relaxed = not choice.any()
        if relaxed:
            choice = alive & forced[1] if forced is not None else alive
        mmr = self.novelty is not None and p < self.novelty.top_k
        if self.novelty is not None and mmr:
            lam = self.novelty.lam
            value = lam * self.rel - (1.0 - lam) * self.maxsim
            j = int(np.argmax(np.where(choice, value, -np.inf)))
        else:
            j = int(np.argmax(choice))  # the first candidate in fused order that may go here
        first = int(np.argmax(alive))
        item_id = self.snapshot.item_ids[int(self.cand[j])]
        if relaxed:
            rule_ids = ",".join(r.id for r, _, blocked, _ in self.caps if p < r.top_k and blocked[j])
            trace.append(RuleFiring(rule_ids, "diversity", item_id,
                                    f"cap relaxed at position {p}: every remaining candidate breaks a cap"))
        if j == first:
            return j, ""
        self._note_held(p, first, cap_ok, trace)
        if forced is not None and forced[1][j] and not forced[1][first]:
            trace.append(RuleFiring(forced[0].id, "new_items", item_id, f"promoted to position {p} (new-item floor)"))
            return j, f"new_items:{forced[0].id}"
        if mmr and self.novelty is not None and ok[first]:
            trace.append(RuleFiring(self.novelty.id, "novelty", item_id,
                                    f"moved to position {p} by MMR (lambda={self.novelty.lam:g})"))
            return j, f"novelty:{self.novelty.id}"
        return j, ""

    def _note_held(self, p: int, first: int, cap_ok: _B, trace: list[RuleFiring]) -> None:
        if cap_ok[first]:
            return
        item_id = self.snapshot.item_ids[int(self.cand[first])]
        for rule, _, blocked, _ in self.caps:
            if p < rule.top_k and blocked[first] and (rule.id, first) not in self.held:
                self.held.add((rule.id, first))
                trace.append(RuleFiring(rule.id, "diversity", item_id,
                                        f"held back from position {p}: at most {rule.max_per} per {rule.by} "
                                        f"in the top {rule.top_k}"))
