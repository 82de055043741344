"""Which items a shopper's purchases take out of recommendations (repurchase-aware).

A purchased item and every variant of its group are suppressed for ``suppress_purchased_days``,
unless the item's category is replenishable (:attr:`FeatureConfig.repurchase_days`): consumables
such as coffee stay recommendable, since shoppers buy them again.

>>> from shopkeep.catalog.snapshot import CatalogSnapshot
>>> from shopkeep.types import Item
>>> snap = CatalogSnapshot.from_items([
...     Item("red", "Lipstick red", group_id="lip", category=("Beauty", "Makeup")),
...     Item("pink", "Lipstick pink", group_id="lip", category=("Beauty", "Makeup")),
...     Item("bean", "Coffee", category=("Grocery", "Beverages")), Item("tee", "Tee")])
>>> purchase_suppression_mask(snap, {"red": 0, "bean": 0}, 86_400_000).tolist()
[True, True, False, False]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from shopkeep.features.config import FeatureConfig

if TYPE_CHECKING:
    from shopkeep.catalog.snapshot import CatalogSnapshot, Mask

__all__ = ["purchase_suppression_mask"]

_DAY_MS = 86_400_000


def purchase_suppression_mask(snapshot: CatalogSnapshot, purchased: Mapping[str, int], now_ms: int,
                              config: FeatureConfig | None = None) -> Mask:
    """True for items to hide because of ``purchased`` (item_id → epoch ms, e.g. ``Context.purchased``)."""
    cfg = config if config is not None else FeatureConfig()
    out = np.zeros(snapshot.n, dtype=np.bool_)
    window_ms = cfg.suppress_purchased_days * _DAY_MS
    groups: list[int] = []
    for item_id, ms in purchased.items():
        i = snapshot.index.get(item_id, -1)
        if i < 0 or now_ms - ms > window_ms:
            continue
        if cfg.repurchase_interval_days(snapshot.category_paths[i]) is not None:
            continue
        out[i] = True
        if snapshot.group[i] >= 0:
            groups.append(int(snapshot.group[i]))
    if groups:
        out |= np.isin(snapshot.group, np.asarray(groups, dtype=np.int32))
    return out
