"""Operator agents under approval: watchers that PROPOSE policy changes and never apply them.

Three watchers read the store and return :class:`Proposal` s, each with its evidence and expected
effect; :class:`OperatorDesk` files them (one pending proposal per target), and a person approves or
rejects each through the API (``/v1/operators/proposals``) or the CLI. On approval the change is
applied through the normal versioned policy path (``apply_policy_doc``: the engine's ``set_policy``,
as ``PUT /v1/policies``), and every step is written to an append-only audit log (who, when, what
changed, the policy versions before and after).

* ``stockout`` — items whose stock covers fewer than ``cover_days`` days of their recent sales
  velocity (purchases in the last ``window_days``) → add an ``exclude`` rule for them.
* ``pacing`` — a paced boost that has used more of today's cap than the share of the day gone by
  (× ``pace_tolerance``) → end the boost's window now (pause it).
* ``margin`` — an offer action whose mean margin in the recent half of the offers audit trail fell
  by ``margin_drop_bps`` or more against the older half → disable that action for its campaign in the
  offer strategy document (collection ``offer_strategies``, versioned like the policy).

The invariant: an agent can never create, remove or loosen a guardrail. :func:`check_tightening`
enforces it on the whole before/after documents, when a proposal is filed AND again at approval
(against the policy in force then): the guardrail rules (regulated, inventory, map, repurchase, avoid,
consent, diversity) must be byte-identical, no exclude rule may disappear or select fewer items, a
rule window may only end earlier, and an offer action may only be disabled, never enabled.
"""

from __future__ import annotations

import builtins
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shopkeep.errors import ConflictError, NotFoundError, ValidationError
from shopkeep.events.log import EVENTS_LOG
from shopkeep.storage.base import LogRecord, OnlineState, Store, iter_collection
from shopkeep.types import parse_timestamp, to_epoch_ms, utc_now

__all__ = [
    "GUARDRAIL_KINDS", "OperatorDesk", "OperatorSettings", "Proposal", "check_tightening", "watch_margin",
    "watch_pacing", "watch_stockouts",
]

PROPOSALS = "operator_proposals"
AUDIT_LOG = "operator_audit"
STRATEGIES = "offer_strategies"
#: Policy rule kinds that are guardrails: an agent may never add, drop or change one.
GUARDRAIL_KINDS = frozenset({"regulated", "inventory", "map", "repurchase", "avoid", "consent", "diversity"})
_OPS = frozenset({"add_exclude", "end_window", "disable_offer_action"})
DAY_MS = 86_400_000


@dataclass(frozen=True)
class OperatorSettings:
    """Watcher thresholds."""

    window_days: float = 7.0
    cover_days: float = 3.0
    pace_tolerance: float = 1.5
    margin_drop_bps: int = 300
    min_decisions: int = 20


@dataclass(frozen=True)
class Proposal:
    """A proposed change: ``ops`` to apply, ``evidence`` that triggered it, ``expected_effect`` in words."""

    agent: str
    target: str
    title: str
    ops: tuple[Mapping[str, Any], ...]
    evidence: Mapping[str, Any]
    expected_effect: str
    proposal_id: str = ""
    status: str = "pending"
    created_at: str = ""
    decided_by: str | None = None
    decided_at: str | None = None
    note: str | None = None
    applied: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The stored and wire form."""
        return {"proposal_id": self.proposal_id, "agent": self.agent, "target": self.target, "title": self.title,
                "ops": [dict(o) for o in self.ops], "evidence": dict(self.evidence),
                "expected_effect": self.expected_effect, "status": self.status, "created_at": self.created_at,
                "decided_by": self.decided_by, "decided_at": self.decided_at, "note": self.note,
                "applied": dict(self.applied)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Proposal:
        """Inverse of :meth:`to_dict`."""
        return cls(d["agent"], d["target"], d["title"], tuple(d["ops"]), d["evidence"], d["expected_effect"],
                   d["proposal_id"], d["status"], d["created_at"], d.get("decided_by"), d.get("decided_at"),
                   d.get("note"), d.get("applied") or {})


# -- the guard ---------------------------------------------------------------------------------
def _rules(doc: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(r.get("id", f"{r.get('kind')}-{i}")): r for i, r in enumerate(doc.get("rules", []))}


def _end_ms(rule: Mapping[str, Any]) -> float:
    end = (rule.get("window") or {}).get("end")
    return float("inf") if end is None else float(to_epoch_ms(parse_timestamp(str(end))))


def _selected(rule: Mapping[str, Any]) -> dict[str, set[str]]:
    sel = rule.get("select") or {}
    return {k: set(map(str, v)) for k, v in sel.items() if isinstance(v, list)}


def check_tightening(before: Mapping[str, Any], after: Mapping[str, Any],
                     strategies_before: Mapping[str, Any] | None = None,
                     strategies_after: Mapping[str, Any] | None = None) -> None:
    """Raise :class:`ValidationError` unless ``after`` only tightens ``before`` (see the module docstring)."""
    old, new = _rules(before), _rules(after)
    for rid, rule in old.items():
        kind = rule.get("kind")
        if kind in GUARDRAIL_KINDS and new.get(rid) != rule:
            raise ValidationError(f"rules.{rid}", kind, "an operator agent may not change or remove a guardrail")
        if rid not in new:
            raise ValidationError(f"rules.{rid}", kind, "an operator agent may not remove a rule")
        now = new[rid]
        if kind == "exclude" and (now.get("kind") != "exclude" or (_selected(now) != _selected(rule)
                                  and not _wider_exclude(_selected(rule), _selected(now)))):
            raise ValidationError(f"rules.{rid}.select", now.get("select"), "an exclusion may only grow")
        if _end_ms(now) > _end_ms(rule):
            raise ValidationError(f"rules.{rid}.window.end", (now.get("window") or {}).get("end"),
                                  "an operator agent may only end a window earlier")
        if kind not in ("exclude",) and {k: v for k, v in now.items() if k != "window"} != \
                {k: v for k, v in rule.items() if k != "window"}:
            raise ValidationError(f"rules.{rid}", kind, "an operator agent may only change a rule's window end")
    for rid, rule in new.items():
        if rid not in old and rule.get("kind") != "exclude":
            raise ValidationError(f"rules.{rid}.kind", rule.get("kind"),
                                  "an operator agent may only add exclusions (never a guardrail or a boost)")
    for campaign, off in _disabled(strategies_before).items():
        if not off <= _disabled(strategies_after).get(campaign, set()):
            raise ValidationError(f"offer_strategies.{campaign}", sorted(off),
                                  "an operator agent may not re-enable an offer action")


def _wider_exclude(old: Mapping[str, set[str]], new: Mapping[str, set[str]]) -> bool:
    """An exclusion selecting more: same fields, each a superset (OR within a field)."""
    return set(old) == set(new) and all(new[k] >= old[k] for k in old)


def _disabled(doc: Mapping[str, Any] | None) -> dict[str, set[str]]:
    camps = (doc or {}).get("campaigns", {})
    return {c: set(v.get("disabled_actions", [])) for c, v in camps.items()}


def apply_ops(policy: Mapping[str, Any], strategies: Mapping[str, Any],
              ops: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The policy and offer-strategy documents after ``ops`` (inputs untouched); unknown ops refused."""
    doc = json.loads(json.dumps(dict(policy)))
    strat = json.loads(json.dumps(dict(strategies)))
    doc.pop("version", None)
    for i, op in enumerate(ops):
        kind = op.get("op")
        if kind not in _OPS:
            raise ValidationError(f"ops[{i}].op", kind, f"must be one of {', '.join(sorted(_OPS))}")
        if kind == "add_exclude":
            doc.setdefault("rules", []).append({"kind": "exclude", "id": str(op["rule_id"]),
                                                "select": {"item_ids": list(op["item_ids"])}})
        elif kind == "end_window":
            rule = _rules(doc).get(str(op["rule_id"]))
            if rule is None:
                raise ValidationError(f"ops[{i}].rule_id", op["rule_id"], "no such rule in the policy in force")
            window = dict(rule.get("window") or {})
            window["end"] = str(op["end"])
            rule["window"] = window  # type: ignore[index]
        else:
            camp = strat.setdefault("campaigns", {}).setdefault(str(op["campaign"]), {"disabled_actions": []})
            if op["action"] not in camp["disabled_actions"]:
                camp["disabled_actions"].append(str(op["action"]))
    return doc, strat


# -- the watchers ------------------------------------------------------------------------------
def _recent_sales(store: Store, since_ms: int, until_ms: int) -> dict[str, int]:
    units: dict[str, int] = defaultdict(int)
    after = 0
    while True:
        page = store.read(EVENTS_LOG, after_seq=after, k=5000)
        if not page:
            return dict(units)
        after = page[-1].seq
        for rec in page:
            if since_ms <= rec.ts_ms <= until_ms and '"purchase"' in rec.payload:
                ev = json.loads(rec.payload)
                if ev.get("type") == "purchase" and ev.get("item_id"):
                    units[ev["item_id"]] += int(ev.get("quantity", 1))


def watch_stockouts(store: Store, items: Mapping[str, Mapping[str, int]], now_ms: int,
                    settings: OperatorSettings) -> list[Proposal]:
    """Items (id → inventory by location) whose stock covers < ``cover_days`` of recent sales."""
    sold = _recent_sales(store, int(now_ms - settings.window_days * DAY_MS), now_ms)
    rows: list[dict[str, Any]] = []
    for item_id, n in sorted(sold.items()):
        stock = sum(max(0, v) for v in items.get(item_id, {}).values())
        if item_id not in items or stock <= 0:
            continue  # out of stock already: the inventory guardrail hides it
        per_day = n / settings.window_days
        cover = stock / per_day
        if cover < settings.cover_days:
            rows.append({"item_id": item_id, "stock": stock, "units_sold": n, "units_per_day": round(per_day, 3),
                         "days_of_cover": round(cover, 2)})
    if not rows:
        return []
    ids = [str(r["item_id"]) for r in rows]
    day = datetime.fromtimestamp(now_ms / 1000, UTC).strftime("%Y%m%d")
    return [Proposal("stockout", "stockout:" + ",".join(ids), f"Stop recommending {len(ids)} item(s) about to "
                     "stock out", ({"op": "add_exclude", "rule_id": f"operator-stockout-{day}-{_h(ids)}",
                                    "item_ids": ids},),
                     {"window_days": settings.window_days, "cover_days": settings.cover_days, "items": rows},
                     f"{len(ids)} item(s) leave every slate; their remaining {sum(r['stock'] for r in rows)} units "
                     "are kept for shoppers who find them directly, instead of recommendations that would send "
                     "shoppers to an item sold out in about "
                     f"{min(r['days_of_cover'] for r in rows)} day(s)")]


def watch_pacing(policy: Mapping[str, Any], online: OnlineState, now_ms: int,
                 settings: OperatorSettings) -> list[Proposal]:
    """Paced boosts that used their daily cap faster than the day went by (× ``pace_tolerance``)."""
    day = datetime.fromtimestamp(now_ms / 1000, UTC).strftime("%Y-%m-%d")
    elapsed = max((now_ms % DAY_MS) / DAY_MS, 1e-3)
    out = []
    for rid, rule in _rules(policy).items():
        if rule.get("kind") != "boost" or _end_ms(rule) <= now_ms:
            continue
        keys = [f"policy:slates:{day}", f"boost:{rid}:slates:{day}", f"boost:{rid}:impressions:{day}"]
        got = online.get_many(keys)
        total, applied, shown = (float(got[k]) if k in got else 0.0 for k in keys)
        cap = rule.get("max_impressions_per_day")
        if not cap:
            continue  # only a daily impression cap has a pace to break (a share cap holds all day)
        used = shown / float(cap)
        if used <= settings.pace_tolerance * elapsed:
            continue
        end = datetime.fromtimestamp(now_ms / 1000, UTC).isoformat().replace("+00:00", "Z")
        out.append(Proposal(
            "pacing", f"pacing:{rid}", f"Pause boost {rid!r}: it is spending its daily cap too fast",
            ({"op": "end_window", "rule_id": rid, "end": end},),
            {"day": day, "share_of_day_elapsed": round(elapsed, 4), "cap_used": round(used, 4),
             "slates_today": total, "boosted_slates_today": applied,
             "boosted_impressions_today": shown, "max_impressions_per_day": cap},
            f"the boost stops now instead of running out at about {min(1.0, elapsed / used) * 24:.1f} h UTC; "
            "slates go back to unboosted ranking; re-enable it with a new window"))
    return out


def _margin_bps(doc: Mapping[str, Any]) -> float | None:
    price = (doc.get("offer_price") or {}).get("amount")
    item = (doc.get("inputs") or {}).get("item") or {}
    cost = (item.get("cost") or {}).get("amount") if isinstance(item.get("cost"), Mapping) else None
    if not price or cost is None:
        return None
    return 10_000.0 * (float(price) - float(cost)) / float(price)


def watch_margin(decisions: Sequence[Mapping[str, Any]], strategies: Mapping[str, Any],
                 settings: OperatorSettings) -> list[Proposal]:
    """Offer actions whose margin fell by ``margin_drop_bps`` from the older to the recent half of the trail."""
    by: dict[tuple[str, str], list[float]] = defaultdict(list)
    for d in decisions:
        m = _margin_bps(d)
        if m is not None and d.get("action") not in (None, "no_action"):
            by[(str((d.get("inputs") or {}).get("campaign", "default")), str(d["action"]))].append(m)
    off = _disabled(strategies)
    out = []
    for (campaign, action), ms in sorted(by.items()):
        if len(ms) < settings.min_decisions or action in off.get(campaign, set()):
            continue
        half = len(ms) // 2
        old, new = sum(ms[:half]) / half, sum(ms[half:]) / (len(ms) - half)
        if old - new < settings.margin_drop_bps:
            continue
        out.append(Proposal(
            "margin", f"margin:{campaign}:{action}", f"Stop {action!r} in campaign {campaign!r}: margin eroding",
            ({"op": "disable_offer_action", "campaign": campaign, "action": action},),
            {"decisions": len(ms), "older_margin_bps": round(old, 1), "recent_margin_bps": round(new, 1),
             "drop_bps": round(old - new, 1)},
            f"shoppers who would get {action!r} get the next-best allowed action (or none); the recent "
            f"{round(new)} bps margin on those offers is no longer given away"))
    return out


def _h(parts: Sequence[str]) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:8]


# -- the desk: filing, approval, audit ----------------------------------------------------------
PolicyGet = Callable[[], Mapping[str, Any]]
PolicyPut = Callable[[Mapping[str, Any]], Mapping[str, Any]]


class OperatorDesk:
    """Files proposals, answers them, applies approved ones through ``put_policy`` and audits every step.

    ``get_policy`` / ``put_policy``: the versioned policy API in force (the engine's ``policy_dict`` and
    ``set_policy``, exactly what ``GET``/``PUT /v1/policies`` call).
    """

    def __init__(self, store: Store, get_policy: PolicyGet, put_policy: PolicyPut,
                 settings: OperatorSettings | None = None) -> None:
        self.store = store
        self.get_policy = get_policy
        self.put_policy = put_policy
        self.settings = settings or OperatorSettings()

    # -- strategies (the offer side of the versioned documents) ---------------------------------
    def strategies(self) -> dict[str, Any]:
        """The offer strategy document in force (``{"campaigns": {}, "version": 0}`` before any)."""
        return dict(self.store.get_many(STRATEGIES, ["active"]).get("active") or {"campaigns": {}, "version": 0})

    def _save_strategies(self, doc: Mapping[str, Any]) -> int:
        number = int(self.strategies().get("version", 0)) + 1
        body = {**dict(doc), "version": number, "saved_at": utc_now().isoformat()}
        self.store.put_many(STRATEGIES, {f"v{number:010d}": body, "active": body})
        return number

    # -- filing ----------------------------------------------------------------------------------
    def run(self, *, items: Mapping[str, Mapping[str, int]], online: OnlineState | None,
            decisions: Sequence[Mapping[str, Any]] = (), now_ms: int | None = None) -> list[Proposal]:
        """Run every watcher once and file what they propose; returns the newly filed proposals."""
        now = now_ms if now_ms is not None else to_epoch_ms(utc_now())
        found = watch_stockouts(self.store, items, now, self.settings)
        if online is not None:
            found += watch_pacing(self.get_policy(), online, now, self.settings)
        found += watch_margin(decisions, self.strategies(), self.settings)
        return [p for p in (self.file(p) for p in found) if p is not None]

    def file(self, proposal: Proposal, *, by: str = "agent") -> Proposal | None:
        """Check and store a proposal as pending (``None`` when one for the same target is pending)."""
        if any(p.target == proposal.target for p in self.list(status="pending")):
            return None
        self._guard(proposal)  # refused at creation: never stored
        pid = "op-" + hashlib.sha256(f"{proposal.target}|{utc_now().isoformat()}".encode()).hexdigest()[:12]
        filed = Proposal(**{**proposal.__dict__, "proposal_id": pid, "status": "pending",
                            "created_at": utc_now().isoformat()})
        self.store.put_many(PROPOSALS, {pid: filed.to_dict()})
        self._audit(pid, "proposed", by, {"agent": filed.agent, "ops": [dict(o) for o in filed.ops]})
        return filed

    def _guard(self, proposal: Proposal) -> tuple[dict[str, Any], dict[str, Any]]:
        policy, strat = self.get_policy(), self.strategies()
        new_policy, new_strat = apply_ops(policy, strat, proposal.ops)
        check_tightening(policy, new_policy, strat, new_strat)
        return new_policy, new_strat

    # -- reading ---------------------------------------------------------------------------------
    def get(self, proposal_id: str) -> Proposal:
        """One proposal (NotFoundError when unknown)."""
        doc = self.store.get_many(PROPOSALS, [proposal_id]).get(proposal_id)
        if doc is None:
            raise NotFoundError(f"no operator proposal {proposal_id!r}", {"proposal_id": proposal_id})
        return Proposal.from_dict(doc)

    def list(self, *, status: str | None = None) -> builtins.list[Proposal]:
        """Every proposal (optionally of one status), newest first."""
        out = [Proposal.from_dict(d) for _, d in iter_collection(self.store, PROPOSALS)]
        out = [p for p in out if status is None or p.status == status]
        return sorted(out, key=lambda p: (p.created_at, p.proposal_id), reverse=True)

    def audit(self, proposal_id: str | None = None) -> builtins.list[dict[str, Any]]:
        """The audit entries (oldest first), optionally of one proposal."""
        out: list[dict[str, Any]] = []
        after = 0
        while True:
            page = self.store.read(AUDIT_LOG, after_seq=after, k=1000, partition=proposal_id)
            if not page:
                return out
            after = page[-1].seq
            out += [json.loads(r.payload) for r in page]

    def _audit(self, pid: str, action: str, by: str, details: Mapping[str, Any]) -> None:
        at = utc_now()
        entry = {"proposal_id": pid, "action": action, "by": by, "at": at.isoformat(), **dict(details)}
        key = f"{pid}:{action}:{at.isoformat()}"
        self.store.append(AUDIT_LOG, [LogRecord(key, to_epoch_ms(at), json.dumps(entry, sort_keys=True), pid)])

    # -- deciding --------------------------------------------------------------------------------
    def _pending(self, proposal_id: str) -> Proposal:
        p = self.get(proposal_id)
        if p.status != "pending":
            raise ConflictError(f"proposal {proposal_id!r} is already {p.status}",
                                {"proposal_id": proposal_id, "status": p.status})
        return p

    def approve(self, proposal_id: str, *, by: str, note: str | None = None) -> Proposal:
        """Re-check the proposal against the documents in force, apply it, record who and what changed."""
        _person(by)
        p = self._pending(proposal_id)
        before = self.get_policy()
        try:
            new_policy, new_strat = self._guard(p)
        except ValidationError as exc:
            refused = Proposal(**{**p.__dict__, "status": "refused", "decided_by": by,
                                  "decided_at": utc_now().isoformat(), "note": exc.message})
            self.store.put_many(PROPOSALS, {proposal_id: refused.to_dict()})
            self._audit(proposal_id, "refused", by, {"reason": exc.message})
            raise
        applied: dict[str, Any] = {"policy_version_before": _version(before)}
        if _rules(new_policy) != _rules(before):
            applied["policy_version_after"] = _version(self.put_policy(new_policy))
        if new_strat.get("campaigns") != self.strategies().get("campaigns"):
            applied["offer_strategy_version_after"] = self._save_strategies(new_strat)
        done = Proposal(**{**p.__dict__, "status": "approved", "decided_by": by,
                           "decided_at": utc_now().isoformat(), "note": note, "applied": applied})
        self.store.put_many(PROPOSALS, {proposal_id: done.to_dict()})
        self._audit(proposal_id, "approved", by, {"note": note, "ops": [dict(o) for o in p.ops], **applied})
        return done

    def reject(self, proposal_id: str, *, by: str, note: str | None = None) -> Proposal:
        """Close the proposal without changing anything."""
        _person(by)
        p = self._pending(proposal_id)
        done = Proposal(**{**p.__dict__, "status": "rejected", "decided_by": by,
                           "decided_at": utc_now().isoformat(), "note": note})
        self.store.put_many(PROPOSALS, {proposal_id: done.to_dict()})
        self._audit(proposal_id, "rejected", by, {"note": note})
        return done


def _person(by: Any) -> None:
    if not isinstance(by, str) or not 0 < len(by.strip()) <= 128:
        raise ValidationError("by", by, "must name the person deciding (1 to 128 characters)")


def _version(doc: Mapping[str, Any]) -> Any:
    v = doc.get("version")
    return v.get("number") if isinstance(v, Mapping) else v


def run_watchers(desk: OperatorDesk, store: Store, online: OnlineState | None, catalog: Any,
                 *, now_ms: int | None = None, max_decisions: int = 1000) -> list[Proposal]:
    """Run every watcher once over ``store`` (inventory from ``catalog``, a CatalogRepository) and file."""
    from shopkeep.offers.audit import AuditTrail

    items = {it.item_id: dict(it.inventory) for it in catalog.iter_items() if it.active}
    decisions = AuditTrail(store).list(k=max_decisions)
    return desk.run(items=items, online=online, decisions=decisions, now_ms=now_ms)
