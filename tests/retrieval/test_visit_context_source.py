"""The ``context`` cold-start source (VisitContextSource over an explore.ContextPrior): the candidate-source
contract (eligibility, order, determinism, batch == scalar, catalog updates) and when it speaks."""

from __future__ import annotations

import numpy as np
import pytest

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.errors import ValidationError
from shopkeep.explore.context_prior import ContextPrior
from shopkeep.features.context import Context, ContextRequest
from shopkeep.retrieval import CandidateSource
from shopkeep.retrieval.coldstart import VisitContextSource
from shopkeep.types import Item

N = 60


def _world(seed: int = 0) -> tuple[CatalogSnapshot, VisitContextSource, list[str]]:
    rng = np.random.default_rng(seed)
    snap = CatalogSnapshot.from_items([Item(f"i{n}", f"Item {n}", category=("Home",)) for n in range(N)])
    ids = list(snap.item_ids)
    rows = [({"campaign": "spring", "device": "mobile"}, int(i)) for i in rng.integers(0, 10, 200)]
    rows += [({"campaign": "winter", "device": "mobile"}, int(i)) for i in rng.integers(30, 40, 200)]
    rows += [({"device": "desktop"}, int(i)) for i in rng.integers(0, N, 300)]
    prior = ContextPrior(shrinkage=5.0).fit(rows, n_items=N)
    return snap, VisitContextSource(prior, ids, snap), ids


def _contexts(n: int, seed: int) -> list[Context]:
    rng = np.random.default_rng(seed)
    campaigns = ["spring", "winter", None, "unknown-campaign"]
    return [Context(ContextRequest(campaign=campaigns[int(rng.integers(0, 4))], device="mobile"), now_ms=0)
            for _ in range(n)]


def test_contract() -> None:
    snap, source, _ = _world()
    assert isinstance(source, CandidateSource) and source.name == "context"
    rng = np.random.default_rng(3)
    contexts = _contexts(20, 1)
    masks = [rng.random(N) < rng.uniform(0.1, 0.9) for _ in contexts]
    for k in (1, 7, 50):
        batch = source.retrieve(contexts, masks, k)
        assert len(batch) == len(contexts)
        for cands, mask in zip(batch, masks, strict=True):
            idx = snap.indices([c.item_id for c in cands])
            assert len(cands) <= k and (idx >= 0).all() and mask[idx].all()
            scores = [c.score for c in cands]
            assert scores == sorted(scores, reverse=True) and all(np.isfinite(scores))
            assert [c.rank for c in cands] == list(range(len(cands))) and {c.source for c in cands} <= {"context"}
        assert source.retrieve(contexts, masks, k) == batch
        for r in (0, 3, 7):
            assert source.retrieve([contexts[r]], [masks[r]], k) == [batch[r]]
    assert sum(map(len, source.retrieve(contexts, masks, 50))) > 0
    assert source.retrieve(contexts[:2], [np.zeros(N, dtype=bool)] * 2, 5) == [[], []]
    with pytest.raises(ValidationError):
        source.retrieve(contexts[:1], [np.ones(N + 1, dtype=bool)], 5)
    with pytest.raises(ValidationError):
        source.retrieve(contexts[:1], [np.ones(N, dtype=bool)], 0)


def test_speaks_for_new_shoppers_with_a_known_context_and_ranks_by_it() -> None:
    _, source, ids = _world()
    spring = Context(ContextRequest(campaign="Spring"), now_ms=0)
    winter = Context(ContextRequest(campaign="winter"), now_ms=0)
    (a, b) = source.retrieve([spring, winter], [np.ones(N, dtype=bool)] * 2, 10)
    assert {c.item_id for c in a} <= set(ids[:10]) and {c.item_id for c in b} <= set(ids[30:40])
    returning = Context(ContextRequest(campaign="spring"), now_ms=0, recent_items=("i1",))
    unknown = Context(ContextRequest(campaign="never-seen"), now_ms=0)
    nothing = Context(ContextRequest(), now_ms=0)
    for ctx in (returning, unknown, nothing):
        assert source.context_weight(ctx) == 0.0
        assert source.retrieve([ctx], [np.ones(N, dtype=bool)], 10) == [[]]
    assert source.context_weight(spring) == 1.0


def test_follows_catalog_updates_and_prior_updates() -> None:
    snap, source, _ = _world()
    bigger = snap.with_items([Item("new-1", "Brand new", category=("Home",))])
    moved = source.with_snapshot(bigger)
    ctx = Context(ContextRequest(campaign="spring"), now_ms=0)
    (cands,) = moved.retrieve([ctx], [np.ones(bigger.n, dtype=bool)], N + 1)
    assert "new-1" not in {c.item_id for c in cands} and len(cands) == N  # no prior for a later item
    prior = source.prior
    assert isinstance(prior, ContextPrior)
    assert prior.update([({"campaign": "autumn"}, 50)] * 30) == 30
    (autumn,) = source.retrieve([Context(ContextRequest(campaign="autumn"), now_ms=0)], [np.ones(N, dtype=bool)], 1)
    assert autumn[0].item_id == "i50"
