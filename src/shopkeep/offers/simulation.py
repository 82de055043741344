"""Counterfactual comparison of offer policies on frozen simulated worlds (``shopkeep offers simulate``).

Per configuration and seed: a *logging* world (its own shoppers) is played with uniformly randomized
actions and written to a fresh Store as production would store it (catalog, decision records,
offer_shown / offer_accepted / purchase events; :mod:`shopkeep.offers.simlog`). The decision stack
learns only from what :func:`~shopkeep.offers.exposures.read_exposures` reads back: an elasticity prior
per category (:func:`~shopkeep.offers.priors.prior_from_exposures`) and the uplift model on top of it.
``ablation_constant_prior`` is the same stack with the constant -2.5 prior instead (not a rival: it
shows what the fitted prior changes). Every policy is then judged on the
same fresh *evaluation* world with common random numbers. The oracle reads the hidden parameters
(:meth:`PriceWorld.expected_value`); nothing else does. Every policy's decisions are re-checked against
the guardrails and counted as violations when refused (the stack and the oracle go through them).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shopkeep.errors import ValidationError
from shopkeep.offers.decide import ACTIONS, DecisionRequest, DecisionStack
from shopkeep.offers.exposures import read_exposures
from shopkeep.offers.guardrails import (
    NO_ACTION,
    GuardrailRules,
    GuardrailState,
    ItemFacts,
    ShopperFacts,
    allowed,
    check_offer,
)
from shopkeep.offers.priors import ElasticityPrior, prior_from_exposures
from shopkeep.offers.simlog import log_to_store
from shopkeep.offers.uplift import FEATURES, UpliftModel
from shopkeep.simulate.pricing import CONFIGS, TREATMENTS, PriceWorld, PriceWorldConfig
from shopkeep.storage import open_store
from shopkeep.storage.base import Store
from shopkeep.types import Money

__all__ = ["ABLATIONS", "POLICIES", "LearnedModels", "PolicyResult", "default_rules", "evaluate_config",
           "learn_from_log", "play", "run_simulation"]

POLICIES: tuple[str, ...] = ("decision_stack", "no_discount", "blanket_10", "blanket_20", "random", "oracle",
                             "ablation_constant_prior")
#: Variants of the stack reported beside it, not counted as rivals it must beat.
ABLATIONS: frozenset[str] = frozenset({"ablation_constant_prior"})
Chooser = Callable[[int, int, dict[str, float]], str]


def default_rules(*, budget_cents: int = 10**12, margin_bps: int = 500) -> GuardrailRules:
    """The merchant rules used in the simulation: every action enabled, a 5 % margin floor."""
    return GuardrailRules(allowed_actions=frozenset(ACTIONS), min_margin_bps=margin_bps, shopper_cap=10**6,
                          offer_cap=10**9, budgets={"default": Money(budget_cents, "USD")},
                          allowed_inputs=frozenset(FEATURES), max_dispersion_bps=2500)


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """One policy on one configuration: per-seed totals (cents) and violations."""

    policy: str
    margins: tuple[int, ...]
    conversions: tuple[float, ...]
    spends: tuple[int, ...]
    violations: int


def _request(world: PriceWorld, s: int, item: int, feats: Mapping[str, float]) -> DecisionRequest:
    member = bool(world.member[s])
    cat = f"cat-{item % len(world.config.category_sensitivity)}"
    return DecisionRequest(
        ShopperFacts(f"sim-{world.seed}-{s}", loyalty_member=member, segment="member" if member else "guest"),
        ItemFacts(f"item-{item}", Money(int(world.price[item]), "USD"), Money(int(world.cost[item]), "USD"),
                  category=cat),
        feats, Money(world.config.ship_cost_cents, "USD"),
        complement_price=Money(int(world.price[int(world.complement[item])]), "USD"))


def _guarded(world: PriceWorld, rules: GuardrailRules, state: GuardrailState, s: int, item: int,
             feats: Mapping[str, float], action: str, stack: DecisionStack) -> bool:
    req = _request(world, s, item, feats)
    offer = stack._offer(ACTIONS[action], req)
    ok = action == NO_ACTION or allowed(check_offer(offer, req.item, req.shopper, rules, state, feats))
    if ok:
        state.record(offer, req.shopper)
    return ok


def _chooser(policy: str, world: PriceWorld, stack: DecisionStack, rules: GuardrailRules, seed: int) -> Chooser:
    rng = np.random.default_rng(seed + 17)
    names = list(TREATMENTS)
    if policy in ("decision_stack", *ABLATIONS):
        return lambda s, i, f: stack.decide(_request(world, s, i, f)).action
    if policy == "oracle":
        def oracle(s: int, i: int, f: dict[str, float]) -> str:
            ranked = sorted(names, key=lambda a: -world.expected_value(s, i, TREATMENTS[a]))
            req = _request(world, s, i, f)
            for a in ranked:
                offer = stack._offer(ACTIONS[a], req)
                if a == NO_ACTION or allowed(check_offer(offer, req.item, req.shopper, rules, stack.state, f)):
                    stack.state.record(offer, req.shopper)
                    return a
            return NO_ACTION  # pragma: no cover
        return oracle
    fixed = {"no_discount": NO_ACTION, "blanket_10": "pct_10", "blanket_20": "pct_20"}
    if policy in fixed:
        return lambda s, i, f: fixed[policy]
    return lambda s, i, f: names[int(rng.integers(0, len(names)))]


def play(policy: str, config: PriceWorldConfig, seed: int, model: UpliftModel, n_eval: int,
          rules: GuardrailRules, margin_weight: float = 1.0) -> tuple[int, float, int, int]:
    """(margin, conversion, spend, violations) of ``policy`` on the fresh evaluation world of ``seed``."""
    world = PriceWorld.create(config, seed * 1000 + 2, n_shoppers=n_eval)
    stack = DecisionStack(model, rules, GuardrailState(), margin_weight=margin_weight)
    choose = _chooser(policy, world, stack, rules, seed)
    check_state = GuardrailState()
    violations = 0

    def audited(s: int, i: int, f: dict[str, float]) -> str:
        nonlocal violations
        a = choose(s, i, f)
        violations += 0 if _guarded(world, rules, check_state, s, i, f, a, stack) else 1
        return a

    logs = world.run(audited, rng_seed=seed * 1000 + 3)
    margin = sum(e.outcome.contribution for e in logs)
    conv = sum(e.outcome.focal for e in logs) / max(len(logs), 1)
    spend = sum(e.outcome.incentive for e in logs)
    return margin, conv, spend, violations


@dataclass(frozen=True, slots=True)
class LearnedModels:
    """What one seed's logging world taught: the prior, the stack's model and the ablation's model."""

    prior: ElasticityPrior | None
    model: UpliftModel
    constant_prior_model: UpliftModel
    n_exposures: int
    n_events: int


def learn_from_log(config: PriceWorldConfig, seed: int, n_log: int, store: Store | None = None) -> LearnedModels:
    """Play the randomized logging world of ``seed``, store it as events, and fit on what is read back."""
    log_world = PriceWorld.create(config, seed * 1000 + 1, n_shoppers=n_log)
    logs = log_world.log_randomized(rng_seed=seed * 1000 + 5)
    own = store is None
    db = store if store is not None else open_store("memory://")
    try:
        n_events = log_to_store(log_world, logs, db)
        exposures = read_exposures(db)
    finally:
        if own:
            db.close()
    try:  # fewer cohorts for a small log, so that the price cells hold enough exposures
        prior: ElasticityPrior | None = prior_from_exposures(
            exposures, cohorts=max(2, min(10, n_log // 400)), source=f"randomized exposures: {config.name} seed {seed}")
    except ValidationError:
        prior = None  # too little price variation logged: the uplift model says it fell back on the constant
    return LearnedModels(prior, UpliftModel(prior=prior).fit(exposures), UpliftModel().fit(exposures),
                         len(exposures), n_events)


def evaluate_config(config: PriceWorldConfig, seeds: Sequence[int], *, n_log: int = 4000, n_eval: int = 1500,
                    policies: Sequence[str] = POLICIES,
                    progress: Callable[[str], None] | None = None) -> dict[str, PolicyResult]:
    """Every policy on ``config`` over ``seeds``; the stack learns from a randomized log per seed."""
    rules = default_rules()
    acc: dict[str, list[tuple[int, float, int, int]]] = {p: [] for p in policies}
    for seed in seeds:
        learned = learn_from_log(config, seed, n_log)
        for p in policies:
            model = learned.constant_prior_model if p in ABLATIONS else learned.model
            acc[p].append(play(p, config, seed, model, n_eval, rules))
            if progress:
                progress(f"{config.name} seed {seed} {p}")
    return {p: PolicyResult(p, tuple(r[0] for r in rows), tuple(r[1] for r in rows), tuple(r[2] for r in rows),
                            sum(r[3] for r in rows)) for p, rows in acc.items()}


def _ci(values: Sequence[float]) -> tuple[float, float, float]:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, mean, mean
    half = 1.96 * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def summarize(results: Mapping[str, PolicyResult], n_eval: int) -> dict[str, Any]:
    """JSON-ready: per policy margin (USD per seed, 95 % CI), conversion, spend, violations; the
    stack's paired margin difference against every other policy and its share of the oracle's gain."""
    out: dict[str, Any] = {"policies": {}, "shoppers_per_seed": n_eval}
    for p, r in results.items():
        m, lo, hi = _ci([x / 100 for x in r.margins])
        out["policies"][p] = {"contribution_margin": round(m, 2), "ci_low": round(lo, 2), "ci_high": round(hi, 2),
                              "conversion": round(statistics.fmean(r.conversions), 4),
                              "discount_spend": round(statistics.fmean(r.spends) / 100, 2),
                              "violations": r.violations}
    if "decision_stack" in results:
        ds = results["decision_stack"].margins
        diffs = {}
        for p, r in results.items():
            if p != "decision_stack":
                m, lo, hi = _ci([(a - b) / 100 for a, b in zip(ds, r.margins, strict=True)])
                diffs[p] = {"mean": round(m, 2), "ci_low": round(lo, 2), "ci_high": round(hi, 2)}
        out["stack_minus"] = diffs
        rivals = [p for p in results if p not in ("decision_stack", "oracle", *ABLATIONS)]
        out["beats_all_non_oracle"] = all(diffs[p]["mean"] > 0 for p in rivals)
        if "oracle" in results and "no_discount" in results:
            base = statistics.fmean(results["no_discount"].margins)
            gain = statistics.fmean(results["oracle"].margins) - base
            got = statistics.fmean(ds) - base
            out["oracle_gain_captured"] = round(got / gain, 4) if gain > 0 else None
            for p in ABLATIONS & set(results):
                abl = statistics.fmean(results[p].margins) - base
                out[f"oracle_gain_captured_{p}"] = round(abl / gain, 4) if gain > 0 else None
    return out


def run_simulation(configs: Sequence[str] = tuple(CONFIGS), seeds: Sequence[int] = tuple(range(10)), *,
                   n_log: int = 4000, n_eval: int = 1500,
                   progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The ``shopkeep offers simulate`` report for the named frozen configurations."""
    report: dict[str, Any] = {"seeds": list(seeds), "n_log": n_log, "n_eval": n_eval, "configs": {}}
    for name in configs:
        res = evaluate_config(CONFIGS[name], seeds, n_log=n_log, n_eval=n_eval, progress=progress)
        report["configs"][name] = summarize(res, n_eval)
    return report
