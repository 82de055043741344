"""shopkeep: a self-hostable 1:1 retail personalization engine.

Importing ``shopkeep`` is cheap: it loads no optional heavy dependency (torch, faiss, ...).
"""

from shopkeep.errors import ShopkeepError, ValidationError
from shopkeep.types import Event, EventType, Item, Money

__all__ = ["Event", "EventType", "Item", "Money", "ShopkeepError", "ValidationError", "__version__"]
__version__ = "0.1.0"
