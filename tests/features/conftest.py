"""Fixtures for the features tests: a synthetic catalog, per-run random draws, memory and Redis states.

The draws are seeded once per test run (``SHOPKEEP_TEST_SEED`` replays a run; otherwise a fresh seed
is drawn and shown in every assertion message), so each run checks other attributes and categories.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import pytest

from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.features import FeatureConfig, SessionFeatures
from shopkeep.simulate import StoreConfig, generate_store
from shopkeep.storage import OnlineState, open_online_state
from shopkeep.types import Event, EventType, Item

RUN_SEED = int(os.environ.get("SHOPKEEP_TEST_SEED", random.SystemRandom().randrange(2**31)))


@dataclass(frozen=True)
class Catalog:
    """The synthetic catalog of this run and its snapshot."""

    items: tuple[Item, ...]
    snapshot: CatalogSnapshot


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    """600 synthetic items of every department (the catalog seed follows the run seed too)."""
    store = generate_store(StoreConfig(n_items=600, n_shoppers=5, n_days=1, seed=RUN_SEED % 10_000))
    return Catalog(tuple(store.items), CatalogSnapshot.from_items(store.items))


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """A generator seeded by the run seed and the test's name."""
    return random.Random(f"{RUN_SEED}:{request.node.name}")


@pytest.fixture
def seed_note() -> str:
    """Put this in assertion messages: how to replay the run."""
    return f"replay with SHOPKEEP_TEST_SEED={RUN_SEED}"


Opener = Callable[[], OnlineState]


@pytest.fixture(params=["memory", "redis"])
def opener(request: pytest.FixtureRequest) -> Iterator[Opener]:
    """Opens online states that share data (one memory instance / one unique Redis prefix)."""
    opened: list[OnlineState] = []
    if request.param == "memory":
        shared = open_online_state("memory://")

        def make() -> OnlineState:
            return shared
        base = prefix = ""
    else:
        base = request.getfixturevalue("redis_uri")
        prefix = f"tf:{uuid.uuid4().hex[:12]}:"

        def make() -> OnlineState:
            state = open_online_state(f"{base}?prefix={prefix}")
            opened.append(state)
            return state

    yield make
    for state in opened:
        state.close()
    if request.param == "redis":
        import redis

        client = redis.Redis.from_url(base)
        stale = list(client.scan_iter(match=f"{prefix}*"))
        if stale:
            client.delete(*stale)
        client.close()


@pytest.fixture
def features(opener: Opener, catalog: Catalog) -> SessionFeatures:
    """SessionFeatures with the default config over a fresh online state."""
    return SessionFeatures(opener(), lambda: catalog.snapshot, FeatureConfig())


class EventMaker:
    """Builds valid events with unique ids."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, kind: str, at: datetime, *, session: str | None = "s1", anon: str | None = "a1",
                  user: str | None = None, item: str | None = None, **extra: object) -> Event:
        self.n += 1
        return Event(f"ev-{self.n}", EventType(kind), at, anonymous_id=anon, user_id=user, session_id=session,
                     item_id=item, **extra)  # type: ignore[arg-type]


@pytest.fixture
def ev() -> EventMaker:
    return EventMaker()

