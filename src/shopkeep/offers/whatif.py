"""What-if: the margin-versus-conversion frontier of the decision stack (``shopkeep offers whatif``).

For one frozen simulated world and seed, the stack learns once from that seed's randomized log (the
production path: events -> exposures -> prior -> uplift), then plays the same fresh evaluation world
(common random numbers) once per (margin weight, discount budget) pair. ``margin_weight`` 1 ranks
actions by expected contribution margin, 0 by expected revenue; the budget caps the campaign's total
incentive spend (the guardrail refuses offers past it). The frontier is the set of points no other
point beats on both contribution margin and conversion. Same inputs, same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from shopkeep.errors import ValidationError
from shopkeep.offers.simulation import default_rules, learn_from_log, play
from shopkeep.simulate.pricing import CONFIGS

__all__ = ["WhatIfPoint", "frontier", "frontier_svg", "run_whatif"]

UNLIMITED = 10**12


@dataclass(frozen=True, slots=True)
class WhatIfPoint:
    """One setting and what the stack achieved with it on the evaluation world."""

    margin_weight: float
    budget_cents: int | None
    contribution_margin: float
    conversion: float
    discount_spend: float
    violations: int
    on_frontier: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (money in USD)."""
        return {"margin_weight": self.margin_weight,
                "budget": None if self.budget_cents is None else self.budget_cents / 100,
                "contribution_margin": round(self.contribution_margin, 2), "conversion": round(self.conversion, 4),
                "discount_spend": round(self.discount_spend, 2), "violations": self.violations,
                "on_frontier": self.on_frontier}


def frontier(points: Sequence[WhatIfPoint]) -> list[WhatIfPoint]:
    """The points with their ``on_frontier`` flag: no other point has >= margin and >= conversion, one >."""
    out = []
    for p in points:
        dominated = any(q.contribution_margin >= p.contribution_margin and q.conversion >= p.conversion
                        and (q.contribution_margin > p.contribution_margin or q.conversion > p.conversion)
                        for q in points)
        out.append(WhatIfPoint(p.margin_weight, p.budget_cents, p.contribution_margin, p.conversion,
                               p.discount_spend, p.violations, not dominated))
    return out


def run_whatif(config: str = "responsive", seed: int = 0, *, margin_weights: Sequence[float] = (0.0, 0.5, 0.8, 1.0),
               budgets_usd: Sequence[float | None] = (0.0, 100.0, 500.0, None), n_log: int = 4000,
               n_eval: int = 800) -> dict[str, Any]:
    """Every (margin weight, budget) pair on ``config``/``seed``; JSON-ready, with the frontier flagged."""
    if config not in CONFIGS:
        raise ValidationError("config", config, f"known: {', '.join(CONFIGS)}")
    bad_w = [w for w in margin_weights if not 0.0 <= w <= 1.0]
    if bad_w or not margin_weights:
        raise ValidationError("margin_weights", bad_w or list(margin_weights), "each must be in [0, 1]")
    bad_b = [b for b in budgets_usd if b is not None and b < 0]
    if bad_b or not budgets_usd:
        raise ValidationError("budgets", bad_b or list(budgets_usd), "each must be >= 0 (or null: unlimited)")
    for name, value, top in (("n_log", n_log, 50_000), ("n_eval", n_eval, 20_000)):
        if not 1 <= value <= top:
            raise ValidationError(name, value, f"must be 1..{top}")
    cfg = CONFIGS[config]
    learned = learn_from_log(cfg, seed, n_log)
    points = []
    for budget in budgets_usd:
        cents = None if budget is None else round(budget * 100)
        rules = default_rules(budget_cents=UNLIMITED if cents is None else cents)
        for w in margin_weights:
            margin, conv, spend, violations = play("decision_stack", cfg, seed, learned.model, n_eval, rules, w)
            points.append(WhatIfPoint(float(w), cents, margin / 100, conv, spend / 100, violations))
    flagged = frontier(points)
    return {"config": config, "seed": seed, "n_log": n_log, "n_eval": n_eval,
            "prior_version": learned.prior.version if learned.prior else None, "uplift_version": learned.model.version_,
            "points": [p.to_dict() for p in flagged],
            "frontier": [p.to_dict() for p in sorted((p for p in flagged if p.on_frontier),
                                                     key=lambda p: p.conversion)]}


def _scale(lo: float, hi: float, a: float, b: float) -> Any:
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def frontier_svg(report: dict[str, Any], *, width: int = 640, height: int = 400) -> str:
    """An SVG scatter of conversion (x) vs contribution margin (y), one colour per budget, frontier joined."""
    pts = report["points"]
    if not pts:
        raise ValidationError("points", 0, "nothing to plot")
    xs = [p["conversion"] for p in pts]
    ys = [p["contribution_margin"] for p in pts]
    left, right, top, bottom = 70, width - 150, 40, height - 50
    fx = _scale(min(xs), max(xs), left, right)
    fy = _scale(min(ys), max(ys), bottom, top)
    palette = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]
    budgets = list(dict.fromkeys(p["budget"] for p in pts))
    colour = {b: palette[i % len(palette)] for i, b in enumerate(budgets)}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="#fff"/>',
           f'<text x="{left}" y="22" font-size="13" font-weight="bold">Offer what-if: margin vs conversion '
           f'({escape(str(report["config"]))}, seed {report["seed"]}, {report["n_eval"]} shoppers)</text>',
           f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#333"/>',
           f'<line x1="{left}" y1="{bottom}" x2="{left}" y2="{top}" stroke="#333"/>']
    for i in range(5):
        vx = min(xs) + (max(xs) - min(xs)) * i / 4
        vy = min(ys) + (max(ys) - min(ys)) * i / 4
        out.append(f'<text x="{fx(vx):.1f}" y="{bottom + 16}" text-anchor="middle">{vx:.3f}</text>')
        out.append(f'<text x="{left - 6}" y="{fy(vy) + 4:.1f}" text-anchor="end">{vy:,.0f}</text>')
    out.append(f'<text x="{(left + right) / 2:.0f}" y="{height - 12}" text-anchor="middle">conversion '
               '(focal purchases per visit)</text>')
    out.append(f'<text x="16" y="{(top + bottom) / 2:.0f}" transform="rotate(-90 16 {(top + bottom) / 2:.0f})" '
               'text-anchor="middle">contribution margin (USD)</text>')
    front = sorted((p for p in pts if p["on_frontier"]), key=lambda p: p["conversion"])
    if len(front) > 1:
        path = " ".join(f'{fx(p["conversion"]):.1f},{fy(p["contribution_margin"]):.1f}' for p in front)
        out.append(f'<polyline points="{path}" fill="none" stroke="#222" stroke-dasharray="4 3"/>')
    for p in pts:
        r = 6 if p["on_frontier"] else 4
        out.append(f'<circle cx="{fx(p["conversion"]):.1f}" cy="{fy(p["contribution_margin"]):.1f}" r="{r}" '
                   f'fill="{colour[p["budget"]]}" stroke="#000" stroke-width="{1 if p["on_frontier"] else 0}">'
                   f'<title>margin weight {p["margin_weight"]}, budget {p["budget"]}: '
                   f'margin {p["contribution_margin"]:,.2f}, conversion {p["conversion"]:.4f}, '
                   f'spend {p["discount_spend"]:,.2f}</title></circle>')
    for i, b in enumerate(budgets):
        y = top + 10 + i * 18
        label = "unlimited" if b is None else f"${b:,.0f}"
        out.append(f'<circle cx="{right + 20}" cy="{y}" r="5" fill="{colour[b]}"/>'
                   f'<text x="{right + 30}" y="{y + 4}">budget {label}</text>')
    y = top + 14 + len(budgets) * 18
    out.append(f'<text x="{right + 14}" y="{y}">- - frontier (ringed)</text>')
    out.append("</svg>")
    return "\n".join(out)
