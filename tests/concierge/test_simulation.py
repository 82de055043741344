"""Small version of benchmarks/quality/concierge.py: policies differ as designed, no violations."""

from __future__ import annotations

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.concierge.evaluate import draw_goals, simulate
from shopkeep.search import SearchConfig, Searcher
from shopkeep.simulate import StoreConfig, generate_store


def test_ask_policies_on_simulated_shoppers() -> None:
    shop = generate_store(StoreConfig(n_items=1200, n_shoppers=5, n_days=1, seed=11))
    searcher = Searcher(SearchConfig(encoder="hashing", cache_dir=None)).fit(CatalogSnapshot.from_items(shop.items))
    goals = draw_goals(searcher, 40, 11)
    never, always, gain = (simulate(searcher, p, goals) for p in ("never", "always", "gain"))
    assert never.mean_turns == 1.0 and always.mean_turns > gain.mean_turns >= 1.0
    assert always.success >= never.success
    assert never.violations == always.violations == gain.violations == 0
    assert all(0.0 <= r.success <= 1.0 for r in (never, always, gain))
