"""Online experiments: hash assignment, exposure logging, per-arm metrics, guardrails, SRM, A/A checks.

* :func:`assign` puts a unit (shopper id) into an arm by a salted hash: the same unit and experiment
  always give the same arm, different experiments are independent (the salt is the experiment name).
* :class:`ExposureLog` records the first time each unit saw its arm (JSON lines, append-only).
* :func:`compare_arms` gives each arm's mean with a confidence interval and its difference from the
  control (Welch's t); with a pre-period ``covariate`` it applies CUPED (Deng et al., 2013).
* :func:`check_guardrail` is a non-inferiority test; :func:`srm_check` a chi-square test of the
  arm counts against the planned split; :func:`aa_false_positive_rate` re-splits one population many
  times with fresh salts and counts how often an A/A comparison is "significant".
* :class:`ExperimentBook` keeps experiments in a :class:`~shopkeep.storage.base.Store` (definition,
  first exposures, per-unit outcomes) and builds their report (``GET /v1/experiments/{id}/report``).

>>> assign(["user-1", "user-2"], "exp-1", ["control", "treatment"]) == assign(["user-1", "user-2"], "exp-1",
...                                                                            ["control", "treatment"])
True
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from shopkeep.errors import NotFoundError, ValidationError
from shopkeep.explore.seeding import stable_hash64
from shopkeep.storage.base import DocumentStore

__all__ = ["AAResult", "ArmMetric", "ExperimentBook", "Exposure", "ExposureLog", "GuardrailResult", "SRMResult",
           "aa_false_positive_rate", "assign", "buckets", "check_guardrail", "compare_arms", "srm_check"]

F64 = npt.NDArray[np.float64]
_M1, _M2, _GOLD = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)


def _splitmix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    with np.errstate(over="ignore"):
        z = x + _GOLD
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    return np.asarray(z ^ (z >> np.uint64(31)))


def unit_keys(unit_ids: Sequence[str]) -> npt.NDArray[np.uint64]:
    """64-bit hashes of the unit ids (compute once, reuse across experiments)."""
    for u in unit_ids:
        if not isinstance(u, str) or not u:
            raise ValidationError("unit_ids", u, "must be non-empty strings")
    return np.array([stable_hash64(u) for u in unit_ids], dtype=np.uint64)


def buckets(keys: npt.NDArray[np.uint64], experiment: str) -> F64:
    """Uniform numbers in [0, 1), one per unit key, salted by ``experiment``."""
    mixed = _splitmix(keys ^ np.uint64(stable_hash64(f"experiment:{experiment}")))
    return np.asarray((mixed >> np.uint64(11)).astype(np.float64) / float(1 << 53))


def _weights(arms: Sequence[str], weights: Sequence[float] | None) -> F64:
    if len(arms) < 2 or len(set(arms)) != len(arms):
        raise ValidationError("arms", list(arms), "need at least two distinct arm names")
    w = np.ones(len(arms)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(arms),) or np.any(~np.isfinite(w)) or np.any(w <= 0):
        raise ValidationError("weights", list(w.ravel()), f"need {len(arms)} positive numbers")
    return np.asarray(w / w.sum())


def assign_keys(keys: npt.NDArray[np.uint64], experiment: str, n_arms: int,
                weights: F64 | None = None) -> npt.NDArray[np.int64]:
    """Arm indices for unit keys (the vectorized core of :func:`assign`)."""
    w = np.full(n_arms, 1.0 / n_arms) if weights is None else weights
    edges = np.cumsum(w)[:-1]
    return np.asarray(np.searchsorted(edges, buckets(keys, experiment), side="right"), dtype=np.int64)


def assign(unit_ids: Sequence[str], experiment: str, arms: Sequence[str],
           weights: Sequence[float] | None = None) -> list[str]:
    """The arm of each unit in ``experiment`` (deterministic; ``weights`` default to an even split)."""
    if not isinstance(experiment, str) or not experiment:
        raise ValidationError("experiment", experiment, "must be a non-empty string")
    idx = assign_keys(unit_keys(unit_ids), experiment, len(arms), _weights(arms, weights))
    return [arms[int(i)] for i in idx]


@dataclass(frozen=True)
class Exposure:
    """A unit's first exposure to an arm of an experiment (``timestamp`` timezone-aware UTC)."""

    experiment: str
    unit_id: str
    arm: str
    timestamp: datetime


class ExposureLog:
    """First exposures per (experiment, unit), kept in memory and appended to a JSON-lines file if given."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._first: dict[tuple[str, str], Exposure] = {}
        if self.path is not None and self.path.exists():
            for line_no, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
                if line.strip():
                    self._remember(_parse_exposure(line, line_no))

    def _remember(self, e: Exposure) -> bool:
        key = (e.experiment, e.unit_id)
        if key in self._first:
            if self._first[key].arm != e.arm:
                raise ValidationError("arm", e.arm, f"unit {e.unit_id!r} was exposed to {self._first[key].arm!r}")
            return False
        self._first[key] = e
        return True

    def log(self, exposures: Iterable[Exposure]) -> int:
        """Record exposures; repeats of a known (experiment, unit) are ignored. Returns how many were new."""
        fresh = []
        for e in exposures:
            if e.timestamp.tzinfo is None:
                raise ValidationError("timestamp", e.timestamp.isoformat(), "must be timezone-aware UTC")
            if self._remember(e):
                fresh.append(e)
        if self.path is not None and fresh:
            with self.path.open("a", encoding="utf-8") as fh:
                for e in fresh:
                    fh.write(json.dumps({**asdict(e), "timestamp": e.timestamp.isoformat()}) + "\n")
        return len(fresh)

    def counts(self, experiment: str) -> dict[str, int]:
        """Exposed units per arm."""
        out: dict[str, int] = {}
        for (exp, _), e in self._first.items():
            if exp == experiment:
                out[e.arm] = out.get(e.arm, 0) + 1
        return out

    def arms(self, experiment: str) -> dict[str, str]:
        """unit_id -> arm for every exposed unit."""
        return {u: e.arm for (exp, u), e in self._first.items() if exp == experiment}


def _parse_exposure(line: str, line_no: int) -> Exposure:
    try:
        raw = json.loads(line)
        return Exposure(str(raw["experiment"]), str(raw["unit_id"]), str(raw["arm"]),
                        datetime.fromisoformat(raw["timestamp"]))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValidationError("exposure", line[:80], f"unreadable exposure record: {exc}", line=line_no) from None


@dataclass(frozen=True)
class ArmMetric:
    """One arm on one metric: mean with CI, and the difference from control with CI and p-value."""

    arm: str
    metric: str
    n: int
    mean: float
    ci_low: float
    ci_high: float
    diff: float
    diff_ci_low: float
    diff_ci_high: float
    relative_lift: float
    p_value: float
    cuped: bool


def _values(name: str, values: Any) -> F64:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size < 2 or not np.all(np.isfinite(x)):
        raise ValidationError(name, x.shape, "needs a 1-d array of at least two finite numbers")
    return x


def _cuped(values: Mapping[str, F64], covariate: Mapping[str, Any]) -> dict[str, F64]:
    xs = {a: _values(f"covariate[{a}]", covariate[a]) for a in values}
    for a in values:
        if xs[a].shape != values[a].shape:
            raise ValidationError(f"covariate[{a}]", xs[a].shape, f"must match the metric's shape {values[a].shape}")
    y_all, x_all = np.concatenate(list(values.values())), np.concatenate(list(xs.values()))
    var = float(x_all.var())
    theta = float(np.cov(y_all, x_all)[0, 1] / var) if var > 0 else 0.0
    return {a: values[a] - theta * (xs[a] - x_all.mean()) for a in values}


def compare_arms(values: Mapping[str, Any], control: str, metric: str, *, alpha: float = 0.05,
                 covariate: Mapping[str, Any] | None = None) -> list[ArmMetric]:
    """Per-arm means and differences from ``control`` (Welch's t), CUPED-adjusted when ``covariate`` is given."""
    if control not in values:
        raise ValidationError("control", control, f"not among the arms {sorted(values)}")
    ys = {a: _values(f"values[{a}]", v) for a, v in values.items()}
    if covariate is not None:
        ys = _cuped(ys, covariate)
    c = ys[control]
    out = []
    for arm, y in ys.items():
        se = float(y.std(ddof=1) / np.sqrt(y.size))
        t = float(stats.t.ppf(1 - alpha / 2, y.size - 1))
        va, vc = y.var(ddof=1) / y.size, c.var(ddof=1) / c.size
        se_d = float(np.sqrt(va + vc))
        dof = float((va + vc) ** 2 / (va**2 / (y.size - 1) + vc**2 / (c.size - 1))) if se_d > 0 else 1.0
        diff = float(y.mean() - c.mean())
        td = float(stats.t.ppf(1 - alpha / 2, dof))
        p = float(2 * stats.t.sf(abs(diff) / se_d, dof)) if se_d > 0 else 1.0
        base = float(c.mean())
        out.append(ArmMetric(arm, metric, int(y.size), float(y.mean()), float(y.mean() - t * se),
                             float(y.mean() + t * se), diff, diff - td * se_d, diff + td * se_d,
                             diff / base if base else float("nan"), 1.0 if arm == control else p,
                             covariate is not None))
    return out


@dataclass(frozen=True)
class GuardrailResult:
    """Whether ``arm`` is non-inferior to control on ``metric`` by at most ``max_relative_drop``."""

    arm: str
    metric: str
    max_relative_drop: float
    worst_relative_change: float
    passed: bool


def check_guardrail(result: ArmMetric, control_mean: float, max_relative_drop: float) -> GuardrailResult:
    """Pass when the CI's lower end of the difference stays above ``-max_relative_drop * control_mean``."""
    if not 0 <= max_relative_drop < 1:
        raise ValidationError("max_relative_drop", max_relative_drop, "must be within [0, 1)")
    worst = result.diff_ci_low / control_mean if control_mean else float("-inf")
    return GuardrailResult(result.arm, result.metric, max_relative_drop, float(worst), worst > -max_relative_drop)


@dataclass(frozen=True)
class SRMResult:
    """Sample-ratio check: chi-square statistic, p-value, and ``mismatch`` when p < threshold."""

    chi2: float
    p_value: float
    mismatch: bool
    counts: dict[str, int]
    expected: dict[str, float]


def srm_check(counts: Mapping[str, int], weights: Mapping[str, float] | None = None, *,
              threshold: float = 0.001) -> SRMResult:
    """Chi-square goodness of fit of the observed arm counts to the planned split (default even)."""
    arms = sorted(counts)
    obs = np.array([counts[a] for a in arms], dtype=np.float64)
    if len(arms) < 2 or np.any(obs < 0) or obs.sum() == 0:
        raise ValidationError("counts", dict(counts), "need counts >= 0 for at least two arms, not all zero")
    w = _weights(arms, None if weights is None else [weights[a] for a in arms])
    exp = w * obs.sum()
    chi2, p = stats.chisquare(obs, exp)
    return SRMResult(float(chi2), float(p), bool(p < threshold), {a: int(c) for a, c in zip(arms, obs, strict=True)},
                     {a: float(e) for a, e in zip(arms, exp, strict=True)})


@dataclass(frozen=True)
class AAResult:
    """A/A validation: share of ``n_runs`` re-splits with p < ``alpha`` and its binomial standard error."""

    false_positive_rate: float
    stderr: float
    n_runs: int
    alpha: float


def aa_false_positive_rate(unit_ids: Sequence[str], values: Any, *, n_runs: int = 2000, alpha: float = 0.05,
                           seed: int = 0, batch: int = 500) -> AAResult:
    """Split the same population ``n_runs`` times (salt ``aa-{seed}-{run}``) and t-test the halves."""
    y = _values("values", values)
    if len(unit_ids) != y.size:
        raise ValidationError("unit_ids", len(unit_ids), f"must have one id per value ({y.size})")
    keys = unit_keys(unit_ids)
    hits = 0
    for start in range(0, n_runs, batch):
        runs = range(start, min(n_runs, start + batch))
        arm = np.stack([assign_keys(keys, f"aa-{seed}-{r}", 2) for r in runs]).astype(bool)
        n1 = arm.sum(axis=1)
        n0 = y.size - n1
        s1, q1 = arm @ y, arm @ (y * y)
        s0, q0 = y.sum() - s1, (y * y).sum() - q1
        m1, m0 = s1 / n1, s0 / n0
        v1, v0 = (q1 - n1 * m1**2) / (n1 - 1) / n1, (q0 - n0 * m0**2) / (n0 - 1) / n0
        dof = (v1 + v0) ** 2 / (v1**2 / (n1 - 1) + v0**2 / (n0 - 1))
        p = 2 * stats.t.sf(np.abs(m1 - m0) / np.sqrt(v1 + v0), dof)
        hits += int((p < alpha).sum())
    fpr = hits / n_runs
    return AAResult(fpr, float(np.sqrt(fpr * (1 - fpr) / n_runs)), n_runs, alpha)


_EXPERIMENTS, _UNITS = "experiments", "experiment_units"


class ExperimentBook:
    """Experiments kept in a document store: ``define`` once, ``expose`` units (hash-assigned, first
    exposure kept), ``record`` their outcomes, ``report`` any time.

    A unit exposed but without a value for a metric counts 0 for it (no purchase = no revenue). When
    every exposed unit has a ``covariate`` (a pre-period value), the report adds CUPED rows.
    """

    def __init__(self, store: DocumentStore) -> None:
        self.store = store

    def define(self, experiment: str, arms: Sequence[str], control: str, *, weights: Sequence[float] | None = None,
               guardrails: Mapping[str, float] | None = None) -> dict[str, Any]:
        """Create or replace an experiment's definition (``guardrails``: metric → largest allowed relative drop)."""
        if not experiment or len(experiment) > 200 or "/" in experiment:
            raise ValidationError("experiment", experiment, "must be 1-200 characters without '/'")
        if control not in arms or len(set(arms)) != len(arms) or len(arms) < 2:
            raise ValidationError("arms", list(arms), f"need two or more distinct arms including control {control!r}")
        _weights(arms, weights)
        doc = {"arms": list(arms), "control": control, "weights": None if weights is None else list(weights),
               "guardrails": dict(guardrails or {})}
        self.store.put_many(_EXPERIMENTS, {experiment: doc})
        return doc

    def definition(self, experiment: str) -> dict[str, Any]:
        """The stored definition (NotFoundError when unknown)."""
        found = self.store.get_many(_EXPERIMENTS, [experiment])
        if experiment not in found:
            raise NotFoundError(f"no experiment {experiment!r}", {"experiment": experiment})
        return dict(found[experiment])

    def expose(self, experiment: str, unit_ids: Sequence[str], at: datetime,
               covariates: Mapping[str, float] | None = None) -> list[str]:
        """Assign and record each unit's first exposure; returns the arm of each unit."""
        if at.tzinfo is None:
            raise ValidationError("at", at.isoformat(), "must be timezone-aware UTC")
        d = self.definition(experiment)
        arms = assign(unit_ids, experiment, d["arms"], d["weights"])
        keys = [f"{experiment}/{u}" for u in unit_ids]
        have = self.store.get_many(_UNITS, keys)
        fresh: dict[str, dict[str, Any]] = {k: {"arm": a, "exposed_at": at.isoformat(), "metrics": {},
                     "covariate": None if covariates is None else covariates.get(u)}
                 for k, u, a in zip(keys, unit_ids, arms, strict=True) if k not in have}
        if fresh:
            self.store.put_many(_UNITS, fresh)
        return arms

    def record(self, experiment: str, outcomes: Mapping[str, Mapping[str, float]]) -> int:
        """Add metric values (unit → metric → value; a metric given again is replaced) for exposed units."""
        keys = {f"{experiment}/{u}": u for u in outcomes}
        have = self.store.get_many(_UNITS, list(keys))
        missing = [u for k, u in keys.items() if k not in have]
        if missing:
            raise ValidationError("unit_id", missing[0], f"was never exposed in experiment {experiment!r}")
        docs = {}
        for k, u in keys.items():
            doc = dict(have[k])
            doc["metrics"] = {**doc.get("metrics", {}), **{m: float(v) for m, v in outcomes[u].items()}}
            docs[k] = doc
        self.store.put_many(_UNITS, docs)
        return len(docs)

    def _units(self, experiment: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        after = f"{experiment}/"
        while True:
            page = self.store.scan(_UNITS, after=after, k=1000)
            for key, doc in page:
                if not key.startswith(f"{experiment}/"):
                    return out
                out.append(dict(doc))
            if len(page) < 1000:
                return out
            after = page[-1][0]

    def report(self, experiment: str, *, alpha: float = 0.05) -> dict[str, Any]:
        """Exposures and SRM check, each metric per arm with CIs (and CUPED rows), guardrail verdicts."""
        d = self.definition(experiment)
        units = self._units(experiment)
        counts = {a: 0 for a in d["arms"]}
        for u in units:
            counts[u["arm"]] = counts.get(u["arm"], 0) + 1
        weights = None if d["weights"] is None else dict(zip(d["arms"], d["weights"], strict=True))
        doc: dict[str, Any] = {"experiment": experiment, "arms": d["arms"], "control": d["control"],
                               "exposures": counts, "metrics": [], "guardrails": []}
        doc["srm"] = asdict(srm_check(counts, weights)) if units else None
        if any(c < 2 for c in counts.values()):
            return doc  # a CI needs two units per arm
        names = sorted({m for u in units for m in u.get("metrics", {})})
        cov = [u.get("covariate") for u in units]
        for name in names:
            values = {a: [u.get("metrics", {}).get(name, 0.0) for u in units if u["arm"] == a] for a in d["arms"]}
            rows = compare_arms(values, d["control"], name, alpha=alpha)
            doc["metrics"].extend(asdict(r) for r in rows)
            if all(c is not None for c in cov):
                covs = {a: [u["covariate"] for u in units if u["arm"] == a] for a in d["arms"]}
                doc["metrics"].extend(asdict(r) for r in compare_arms(values, d["control"], name, alpha=alpha,
                                                                      covariate=covs))
            drop = d["guardrails"].get(name)
            if drop is not None:
                base = next(r.mean for r in rows if r.arm == d["control"])
                doc["guardrails"].extend(asdict(check_guardrail(r, base, float(drop)))
                                         for r in rows if r.arm != d["control"])
        return doc
