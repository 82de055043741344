"""Log-log demand and price elasticities from store-week scanner data (Dominick's refrigerated OJ).

Model, fitted per brand ``b`` on its store-weeks (floats: prices are $ per ounce)::

    logmove[s,t] = a[s] + e[s] * ln p_b[s,t] + sum_{j != b} g[j] * ln p_j[s,t] + d * deal + f * feat + u

* store fixed effects ``a[s]`` (within-store demeaning);
* cross-price terms ``g[j]`` for every competitor brand (positive = substitutes: cannibalization);
* the brand's own-price elasticity ``e`` with a cluster-robust (by store) standard error and a 95 % CI;
* hierarchical shrinkage, empirical Bayes (normal-normal, DerSimonian-Laird moment estimate of the
  between-group variance ``tau^2``): store-level own-price slopes ``e[s]`` are pooled toward the brand
  mean, ``e_shrunk[s] = B e_brand + (1 - B) e[s]`` with ``B = se[s]^2 / (se[s]^2 + tau^2)``; brand
  elasticities are pooled the same way toward the precision-weighted category mean (``shrunk``).

Prediction uses the store-level shrunk slopes, the pooled cross-price/promotion terms and the store-brand
intercept re-estimated around them.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from shopkeep.errors import NotFittedError, ValidationError

__all__ = [
    "OJ_BRANDS",
    "BrandElasticity",
    "DemandModel",
    "HoldoutReport",
    "OJPanel",
    "brand_table",
    "empirical_bayes",
    "holdout_evaluation",
    "load_orange_juice",
    "naive_forecast",
]

#: Brand names of the 11 brands in ``orangeJuice_yx`` (bayesm documentation order).
OJ_BRANDS: tuple[str, ...] = (
    "Tropicana Premium 64oz", "Tropicana Premium 96oz", "Florida's Natural 64oz", "Tropicana 64oz",
    "Minute Maid 64oz", "Minute Maid 96oz", "Citrus Hill 64oz", "Tree Fresh 64oz", "Florida Gold 64oz",
    "Dominicks 64oz", "Dominicks 128oz",
)
_COLUMNS = ("store", "brand", "week", "logmove", *(f"price{i}" for i in range(1, 12)), "deal", "feat")
FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class OJPanel:
    """Store-brand-week rows: ids, log sales, log prices of all brands (n x B), deal and feature flags."""

    store: IntArray
    brand: IntArray
    week: IntArray
    logmove: FloatArray
    log_prices: FloatArray
    deal: FloatArray
    feat: FloatArray

    def __len__(self) -> int:
        return int(self.store.shape[0])

    def subset(self, mask: NDArray[np.bool_]) -> OJPanel:
        """The rows where ``mask`` is true."""
        return OJPanel(self.store[mask], self.brand[mask], self.week[mask], self.logmove[mask],
                       self.log_prices[mask], self.deal[mask], self.feat[mask])


def load_orange_juice(path: str | Path) -> OJPanel:
    """Read ``orangeJuice_yx.csv`` (a file, or a folder holding it); bad cells raise ValidationError."""
    p = Path(path)
    if p.is_dir():
        p = p / "orangeJuice_yx.csv"
    if not p.is_file():
        raise ValidationError("data", str(path), "no orangeJuice_yx.csv there")
    with p.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        missing = [c for c in _COLUMNS if c not in header]
        if missing:
            raise ValidationError("header", header, f"missing columns {missing}", line=1)
        idx = [header.index(c) for c in _COLUMNS]
        rows: list[list[float]] = []
        for line, rec in enumerate(reader, start=2):
            try:
                rows.append([float(rec[i]) for i in idx])
            except (ValueError, IndexError):
                raise ValidationError("row", rec, "non-numeric or missing cell", line=line) from None
            if min(rows[-1][4:15]) <= 0:
                raise ValidationError("price", rec, "prices must be > 0", line=line)
    a = np.asarray(rows, dtype=np.float64)
    if a.shape[0] == 0:
        raise ValidationError("data", str(p), "has no rows")
    return OJPanel(a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2].astype(np.int64), a[:, 3],
                   np.log(a[:, 4:15]), a[:, 15], a[:, 16])


def _demean(groups: IntArray, x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Within-group demeaned x, and the per-row group means (groups are small non-negative ints)."""
    _, inv = np.unique(groups, return_inverse=True)
    counts = np.bincount(inv).astype(np.float64)
    if x.ndim == 1:
        means = np.bincount(inv, weights=x) / counts
        return x - means[inv], means[inv]
    means2 = np.stack([np.bincount(inv, weights=x[:, k]) / counts for k in range(x.shape[1])], axis=1)
    return x - means2[inv], means2[inv]


def empirical_bayes(est: FloatArray, se: FloatArray, mean: float | None = None) -> tuple[FloatArray, float, float]:
    """Normal-normal partial pooling: (shrunk estimates, tau^2, prior mean).

    ``tau^2`` is the DerSimonian-Laird moment estimate; the prior mean is ``mean`` or the
    precision-weighted mean.

    >>> s, tau2, m = empirical_bayes(np.array([-2.0, -2.0, -2.0]), np.array([0.1, 0.1, 0.1]))
    >>> [round(float(v), 6) for v in s], tau2, m
    ([-2.0, -2.0, -2.0], 0.0, -2.0)
    """
    w = 1.0 / np.maximum(se, 1e-12) ** 2
    mu = float(np.sum(w * est) / np.sum(w)) if mean is None else float(mean)
    k = est.shape[0]
    q = float(np.sum(w * (est - mu) ** 2))
    denom = float(np.sum(w) - np.sum(w**2) / np.sum(w))
    tau2 = max(0.0, (q - (k - 1)) / denom) if k > 1 and denom > 0 else 0.0
    b = se**2 / (se**2 + tau2) if tau2 > 0 else np.ones_like(se)
    return b * mu + (1.0 - b) * est, tau2, mu


@dataclass(frozen=True, slots=True)
class BrandElasticity:
    """Own-price elasticity of one brand: pooled estimate, cluster-robust 95 % CI, EB-shrunk value."""

    brand: int
    name: str
    elasticity: float
    se: float
    ci_low: float
    ci_high: float
    shrunk: float
    store_tau: float
    n_obs: int
    n_stores: int
    cross: dict[str, float]


@dataclass
class _BrandFit:
    coef: FloatArray  # [11 log prices, deal, feat]
    stores: IntArray
    store_slope: FloatArray  # shrunk store-level own slopes
    store_intercept: FloatArray


class DemandModel:
    """Per-brand log-log demand with store effects, cross prices, promotion and EB shrinkage.

    ``fit(panel)`` returns self; ``elasticities_`` holds one :class:`BrandElasticity` per brand.
    """

    def __init__(self, *, min_store_obs: int = 8, z: float = 1.959964) -> None:
        self.min_store_obs = min_store_obs
        self.z = z

    def fit(self, panel: OJPanel) -> DemandModel:
        """Estimate every brand present in ``panel``."""
        if len(panel) == 0:
            raise ValidationError("panel", 0, "no rows to fit")
        self.brands_ = sorted(int(b) for b in np.unique(panel.brand))
        fits: dict[int, _BrandFit] = {}
        rows: list[tuple[int, float, float, FloatArray, int, int, float]] = []
        for b in self.brands_:
            sub = panel.subset(panel.brand == b)
            fit, se, tau2 = self._fit_brand(b, sub)
            fits[b] = fit
            rows.append((b, float(fit.coef[b - 1]), se, fit.coef, len(sub), len(fit.stores), tau2))
        est = np.array([r[1] for r in rows])
        ses = np.array([r[2] for r in rows])
        shrunk, _, _ = empirical_bayes(est, ses)
        self._fits = fits
        self.elasticities_ = [
            BrandElasticity(
                brand=b, name=OJ_BRANDS[b - 1] if b <= len(OJ_BRANDS) else f"brand {b}",
                elasticity=e, se=se, ci_low=e - self.z * se, ci_high=e + self.z * se, shrunk=float(shrunk[i]),
                store_tau=math.sqrt(tau2), n_obs=n, n_stores=ns,
                cross={f"price{j + 1}": float(coef[j]) for j in range(coef.shape[0] - 2) if j != b - 1},
            )
            for i, (b, e, se, coef, n, ns, tau2) in enumerate(rows)
        ]
        return self

    def _fit_brand(self, b: int, sub: OJPanel) -> tuple[_BrandFit, float, float]:
        x = np.column_stack([sub.log_prices, sub.deal, sub.feat])
        xd, _ = _demean(sub.store, x)
        yd, _ = _demean(sub.store, sub.logmove)
        xtx_inv: FloatArray = np.linalg.pinv(xd.T @ xd).astype(np.float64)
        coef = xtx_inv @ (xd.T @ yd)
        resid = yd - xd @ coef
        se = self._cluster_se(xd, resid, sub.store, xtx_inv, b - 1)
        slopes, slope_se, stores = self._store_slopes(b, sub, coef)
        shrunk, tau2, _ = empirical_bayes(slopes, slope_se, mean=float(coef[b - 1]))
        other = np.delete(np.arange(x.shape[1]), b - 1)
        intercepts = np.array([
            float(np.mean(sub.logmove[m] - shrunk[i] * sub.log_prices[m, b - 1] - x[m][:, other] @ coef[other]))
            for i, m in enumerate(sub.store[None, :] == stores[:, None])
        ])
        return _BrandFit(coef, stores, shrunk, intercepts), se, tau2

    @staticmethod
    def _cluster_se(xd: FloatArray, resid: FloatArray, groups: IntArray, xtx_inv: FloatArray, k: int) -> float:
        """Cluster-robust (by store) standard error of coefficient ``k``, with the CR1 small-sample factor."""
        _, inv = np.unique(groups, return_inverse=True)
        g = int(inv.max()) + 1
        scores = np.zeros((g, xd.shape[1]))
        np.add.at(scores, inv, xd * resid[:, None])
        meat = scores.T @ scores
        n, p = xd.shape
        factor = g / max(g - 1, 1) * (n - 1) / max(n - p - g, 1)
        cov = factor * xtx_inv @ meat @ xtx_inv
        return float(math.sqrt(max(cov[k, k], 0.0)))

    def _store_slopes(self, b: int, sub: OJPanel, coef: FloatArray) -> tuple[FloatArray, FloatArray, IntArray]:
        """Per-store own-price slopes (other terms fixed at the pooled values) and their standard errors."""
        x = np.column_stack([sub.log_prices, sub.deal, sub.feat])
        other = np.delete(np.arange(x.shape[1]), b - 1)
        partial = sub.logmove - x[:, other] @ coef[other]
        stores = np.unique(sub.store)
        est = np.full(stores.shape[0], float(coef[b - 1]))
        se = np.full(stores.shape[0], 1e6)  # a store with no price variation keeps the brand mean
        for i, s in enumerate(stores):
            m = sub.store == s
            lp = sub.log_prices[m, b - 1] - sub.log_prices[m, b - 1].mean()
            sxx = float(lp @ lp)
            if int(m.sum()) < self.min_store_obs or sxx < 1e-8:
                continue
            yy = partial[m] - partial[m].mean()
            slope = float(lp @ yy) / sxx
            r = yy - slope * lp
            sigma2 = float(r @ r) / max(int(m.sum()) - 2, 1)
            est[i], se[i] = slope, math.sqrt(sigma2 / sxx)
        return est, se, stores.astype(np.int64)

    def predict(self, panel: OJPanel) -> FloatArray:
        """Predicted log sales; a store unseen in training uses the brand's mean intercept and slope."""
        if not hasattr(self, "_fits"):
            raise NotFittedError("DemandModel.predict before fit()")
        out = np.empty(len(panel))
        for b in np.unique(panel.brand):
            fit = self._fits.get(int(b))
            if fit is None:
                raise ValidationError("brand", int(b), "not in the training data")
            m = panel.brand == b
            x = np.column_stack([panel.log_prices[m], panel.deal[m], panel.feat[m]])
            other = np.delete(np.arange(x.shape[1]), b - 1)
            pos = np.searchsorted(fit.stores, panel.store[m])
            pos = np.clip(pos, 0, fit.stores.shape[0] - 1)
            known = fit.stores[pos] == panel.store[m]
            slope = np.where(known, fit.store_slope[pos], fit.coef[b - 1])
            icpt = np.where(known, fit.store_intercept[pos], float(np.mean(fit.store_intercept)))
            out[m] = icpt + slope * x[:, b - 1] + x[:, other] @ fit.coef[other]
        return out


@dataclass(frozen=True, slots=True)
class HoldoutReport:
    """Out-of-sample RMSE of weekly log sales on the last ``weeks`` weeks: model vs naive baseline."""

    weeks: int
    n_test: int
    rmse_model: float
    rmse_naive: float
    mae_model: float
    mae_naive: float


def naive_forecast(panel: OJPanel, k: int = 4) -> FloatArray:
    """Each row's forecast = mean log sales of the same store-brand's previous ``k`` observed weeks (NaN if none)."""
    order = np.lexsort((panel.week, panel.brand, panel.store))
    out = np.full(len(panel), np.nan)
    prev_key: tuple[int, int] | None = None
    history: list[float] = []
    for i in order:
        key = (int(panel.store[i]), int(panel.brand[i]))
        if key != prev_key:
            history, prev_key = [], key
        if history:
            out[i] = float(np.mean(history[-k:]))
        history.append(float(panel.logmove[i]))
    return out


def holdout_evaluation(
    panel: OJPanel, model: DemandModel | None = None, *, weeks: int = 20
) -> tuple[DemandModel, HoldoutReport]:
    """Fit on all but the last ``weeks`` weeks; score both forecasts on the test rows the baseline covers."""
    cut = int(np.unique(panel.week)[-weeks])
    train, test_mask = panel.week < cut, panel.week >= cut
    fitted = (model or DemandModel()).fit(panel.subset(train))
    naive = naive_forecast(panel)[test_mask]
    test = panel.subset(test_mask)
    pred = fitted.predict(test)
    ok = ~np.isnan(naive)
    err_m, err_n = pred[ok] - test.logmove[ok], naive[ok] - test.logmove[ok]
    return fitted, HoldoutReport(
        weeks=weeks, n_test=int(ok.sum()),
        rmse_model=float(np.sqrt(np.mean(err_m**2))), rmse_naive=float(np.sqrt(np.mean(err_n**2))),
        mae_model=float(np.mean(np.abs(err_m))), mae_naive=float(np.mean(np.abs(err_n))),
    )


def brand_table(model: DemandModel, brands: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """JSON-ready rows: brand, name, elasticity, ci_low, ci_high, shrunk, se, store_tau, n_obs."""
    keep = set(brands) if brands is not None else None
    return [
        {"brand": e.brand, "name": e.name, "elasticity": round(e.elasticity, 4), "ci_low": round(e.ci_low, 4),
         "ci_high": round(e.ci_high, 4), "shrunk": round(e.shrunk, 4), "se": round(e.se, 4),
         "store_tau": round(e.store_tau, 4), "n_obs": e.n_obs, "n_stores": e.n_stores}
        for e in model.elasticities_ if keep is None or e.brand in keep
    ]
