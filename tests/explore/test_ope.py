"""Off-policy estimators on small synthetic bandit problems with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from shopkeep.errors import ValidationError
from shopkeep.explore.ope import doubly_robust, ips, slate_position_ips, snips

TRUE_P = np.array([0.1, 0.3, 0.6])
LOGGING = np.array([0.6, 0.3, 0.1])
TARGET = np.array([0.1, 0.2, 0.7])
TRUTH = float(TARGET @ TRUE_P)


def _log(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    a = rng.choice(3, size=n, p=LOGGING)
    return a, (rng.random(n) < TRUE_P[a]).astype(float)


def test_ips_snips_dr_are_close_to_the_truth_and_cis_cover_it() -> None:
    rng = np.random.default_rng(0)
    covered = {"ips": 0, "snips": 0, "dr": 0}
    q = TRUE_P + np.array([0.05, -0.05, 0.1])  # a deliberately imperfect reward model
    for _ in range(200):
        a, r = _log(2000, rng)
        for name, est in (("ips", ips(r, LOGGING[a], TARGET[a])), ("snips", snips(r, LOGGING[a], TARGET[a])),
                          ("dr", doubly_robust(r, LOGGING[a], TARGET[a], q[a], np.full(a.size, TARGET @ q)))):
            lo, hi = est.ci()
            covered[name] += lo <= TRUTH <= hi
    for name, hits in covered.items():
        assert 0.9 <= hits / 200 <= 0.99, (name, hits)


def test_wrong_propensities_make_ips_biased() -> None:
    rng = np.random.default_rng(1)
    a, r = _log(200_000, rng)
    assert ips(r, LOGGING[a], TARGET[a]).value == pytest.approx(TRUTH, rel=0.03)
    assert abs(ips(r, np.full(a.size, 1 / 3), TARGET[a]).value - TRUTH) > 0.1


def test_dr_with_a_perfect_model_has_lower_variance_than_ips() -> None:
    rng = np.random.default_rng(2)
    a, r = _log(20_000, rng)
    dr = doubly_robust(r, LOGGING[a], TARGET[a], TRUE_P[a], np.full(a.size, TRUTH))
    assert dr.stderr < 0.7 * ips(r, LOGGING[a], TARGET[a]).stderr


def test_slate_position_ips_is_unbiased_under_the_item_position_model() -> None:
    rng = np.random.default_rng(3)
    n, k, items = 50_000, 2, np.array([0.2, 0.5, 0.1])
    exam = np.array([1.0, 0.5])
    # logging: a uniformly random ordered pair of the 3 items -> P(item at j) = 1/3
    perm = np.argsort(rng.random((n, 3)), axis=1)[:, :k]
    r = (rng.random((n, k)) < exam * items[perm]).astype(float)
    target_slate = np.array([1, 0])
    est = slate_position_ips(r, np.full((n, k), 1 / 3), (perm == target_slate).astype(float))
    assert est.value == pytest.approx(float(exam @ items[target_slate]), rel=0.05)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValidationError, match="logging_propensities"):
        ips([1.0], [0.0], [1.0])
    with pytest.raises(ValidationError, match="target_propensities"):
        snips([1.0, 0.0], [0.5, 0.5], [1.0])
    with pytest.raises(ValidationError, match="rewards"):
        ips([], [], [])
    with pytest.raises(ValidationError, match="rewards"):
        slate_position_ips([1.0], [0.5], [1.0])
    with pytest.raises(ValidationError, match="model_target"):
        doubly_robust([1.0], [0.5], [1.0], [0.2], [float("nan")])
