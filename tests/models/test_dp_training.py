"""DPSeqRec: user-level DP-SGD trains on a small set, reports (epsilon, delta) within the target, is
deterministic per seed, and the noise actually changes what is learned."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("opacus")

from shopkeep.errors import NotFittedError, ValidationError
from shopkeep.models.base import Interactions
from shopkeep.models.dp_training import DPSeqRec

N_ITEMS = 40


def _train() -> tuple[Interactions, tuple[np.ndarray, ...]]:  # type: ignore[type-arg]
    """120 shoppers walking a ring of items (next item = current + 1), so there is something to learn."""
    rng = np.random.default_rng(0)
    seqs = []
    for _ in range(120):
        start, length = int(rng.integers(0, N_ITEMS)), int(rng.integers(4, 10))
        seqs.append((start + np.arange(length)) % N_ITEMS)
    return Interactions(tuple(seqs), N_ITEMS), tuple(seqs)


def _model(**kw: object) -> DPSeqRec:
    settings: dict[str, object] = {"d": 16, "n_heads": 2, "max_len": 8, "epochs": 2, "batch_size": 40, "lr": 1e-2,
                                   "seed": 7, **kw}
    return DPSeqRec(**settings)  # type: ignore[arg-type]


def test_dp_training_reports_epsilon_and_is_deterministic() -> None:
    train, seqs = _train()
    a = _model(dp_epsilon=4.0, dp_delta=1e-3).fit(train)
    b = _model(dp_epsilon=4.0, dp_delta=1e-3).fit(train)
    assert a.epsilon_ is not None and 3.0 < a.epsilon_ <= 4.0 + 1e-6  # the accountant spent (almost) the budget
    assert a.delta_ == 1e-3 and a.noise_multiplier_ is not None and a.noise_multiplier_ > 0.3
    assert [h["epsilon"] for h in a.history_] == sorted(h["epsilon"] for h in a.history_)  # spent per epoch
    np.testing.assert_array_equal(a.score(seqs[:20]), b.score(seqs[:20]))
    c = _model(dp_epsilon=4.0, dp_delta=1e-3, seed=8).fit(train)
    assert not np.array_equal(a.score(seqs[:20]), c.score(seqs[:20]))  # another seed, other noise


def test_plain_training_learns_and_dp_costs_accuracy() -> None:
    train, seqs = _train()
    plain = _model(epochs=8).fit(train)
    assert plain.epsilon_ is None and plain.noise_multiplier_ is None
    histories = [s[:-1] for s in seqs]
    hits = (plain.score(histories).argmax(1) == np.array([s[-1] for s in seqs])).mean()
    assert hits > 0.5  # the ring is learned without DP
    noisy = _model(epochs=8, dp_epsilon=0.5, dp_delta=1e-3).fit(train)
    noisy_hits = (noisy.score(histories).argmax(1) == np.array([s[-1] for s in seqs])).mean()
    assert noisy_hits < hits
    losses = plain.row_losses(list(seqs))
    assert losses.shape == (120,) and np.isfinite(losses).all()


def test_dp_training_checks_its_parameters() -> None:
    train, seqs = _train()
    with pytest.raises(NotFittedError):
        _model().score(seqs[:1])
    with pytest.raises(ValidationError, match="dp_epsilon"):
        _model(dp_epsilon=0.0).fit(train)
    with pytest.raises(ValidationError, match="dp_delta"):
        _model(dp_epsilon=1.0, dp_delta=1.5).fit(train)


def test_ghost_clipping_trains_the_same_model_as_per_sample_hooks() -> None:
    """Ghost clipping computes per-shopper norms without per-shopper gradients: same clipping, same noise
    draw (same seeds), so the same weights up to float rounding; and the same privacy accounting."""
    train, seqs = _train()
    ghost = _model(epochs=1, dp_epsilon=4.0, dp_delta=1e-3, dp_clipping="ghost", dropout=0.0).fit(train)
    hooks = _model(epochs=1, dp_epsilon=4.0, dp_delta=1e-3, dp_clipping="hooks", dropout=0.0).fit(train)
    assert ghost.epsilon_ == hooks.epsilon_ and ghost.noise_multiplier_ == hooks.noise_multiplier_
    np.testing.assert_allclose(ghost.score(seqs[:20]), hooks.score(seqs[:20]), rtol=1e-3, atol=1e-3)
    loose = _model(epochs=1, dp_epsilon=4.0, dp_delta=1e-3, dropout=0.0, dp_max_grad_norm=100.0).fit(train)
    assert not np.allclose(ghost.score(seqs[:20]), loose.score(seqs[:20]), atol=1e-3)  # the clip bound matters


def test_sampled_softmax_learns_and_reports_each_epoch() -> None:
    train, seqs = _train()
    seen: list[float] = []
    histories = [s[:-1] for s in seqs]
    model = _model(epochs=8, negatives=10)
    targets = np.array([s[-1] for s in seqs])
    model.fit(train, on_epoch=lambda _: seen.append(float((model.score(histories).argmax(1) == targets).mean())))
    assert len(seen) == 8 and seen[-1] > 0.5 and seen[-1] > seen[0]  # the ring is learned, scored over all items
    assert model.score(histories).shape == (120, N_ITEMS)
    dp = _model(epochs=2, negatives=10, dp_epsilon=4.0, dp_delta=1e-3).fit(train)
    assert dp.epsilon_ is not None and dp.epsilon_ <= 4.0 + 1e-6 and np.isfinite(dp.row_losses(list(seqs))).all()
    with pytest.raises(ValidationError, match="negatives"):
        _model(negatives=0).fit(train)
    with pytest.raises(ValidationError, match="dp_clipping"):
        _model(dp_epsilon=1.0, dp_clipping="fast").fit(train)
