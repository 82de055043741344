"""shopkeep.features: hot per-session and per-shopper features and the request Context.

The write path folds accepted events into online state (:meth:`SessionFeatures.update`); the read
path turns a request into a :class:`Context` (:meth:`SessionFeatures.context`).
"""

from shopkeep.features.config import FeatureConfig
from shopkeep.features.context import Context, ContextRequest, Surface, affinity_key
from shopkeep.features.purchases import purchase_suppression_mask
from shopkeep.features.session import SessionFeatures, filter_key, state_keys
from shopkeep.features.state import State, decay_factor

__all__ = [
    "Context",
    "ContextRequest",
    "FeatureConfig",
    "SessionFeatures",
    "State",
    "Surface",
    "affinity_key",
    "decay_factor",
    "filter_key",
    "purchase_suppression_mask",
    "state_keys",
]
