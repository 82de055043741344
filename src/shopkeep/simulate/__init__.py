"""A seeded synthetic store (catalog, shoppers, sessions, price response) for demos and decision tests.

>>> from shopkeep.simulate import StoreConfig, generate_store
>>> store = generate_store(StoreConfig(n_items=200, n_shoppers=20, n_days=3, seed=7))
>>> store.items[0].item_id, store.shoppers[0].segment in SEGMENTS
('sku-0000000', True)
"""

from shopkeep.simulate.calibration import calibration_report
from shopkeep.simulate.items import event_to_wire, item_to_wire
from shopkeep.simulate.shoppers import Shopper
from shopkeep.simulate.store import StoreConfig, SyntheticStore, generate_store
from shopkeep.simulate.taxonomy import ARCHETYPES

SEGMENTS: tuple[str, ...] = tuple(ARCHETYPES)

__all__ = [
    "SEGMENTS",
    "Shopper",
    "StoreConfig",
    "SyntheticStore",
    "calibration_report",
    "event_to_wire",
    "generate_store",
    "item_to_wire",
]
