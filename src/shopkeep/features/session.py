"""Hot session and shopper features: the write path (:meth:`SessionFeatures.update`) and the read path
(:meth:`SessionFeatures.context`) over one :class:`~shopkeep.storage.base.OnlineState`.

State keys (compact JSON bytes, see :class:`~shopkeep.features.state.State`):

* ``sess:<session_id>`` — one visit: affinities with ``half_life_s`` (30 min), recent items, cart,
  purchases; expires after ``ttl_s``;
* ``user:<user_id>`` for events that carry a user id, else ``anon:<anonymous_id>`` — the long-term
  record: the same parts with ``user_half_life_s`` (14 days) and the shopper's session ids (for
  :meth:`SessionFeatures.forget`); expires after ``user_ttl_s``.

Affinity keys written (retrieval matches them against items with
:meth:`~shopkeep.catalog.snapshot.CatalogSnapshot.affinity_keys`): for an item event, every key of
the item (``cat:`` each category level, ``brand:``, ``attr:k=v``, ``group:``) plus ``item:<item_id>``
(the id exactly as sent, not lower-cased),
each getting the event type's weight; for a ``filter`` event, ``attr:<attribute>=<value>``.

Merging on read: ``affinities = S + λ·L`` where ``S`` and ``L`` are the session and long-term
affinities decayed to the request time and ``λ = min(1, session_dominance · ‖S‖₁ / ‖L‖₁)``: the
long-term history adds at most ``session_dominance`` (0.5) of the session's own mass, so a session
that diverges from the past always leads; without session affinities ``L`` is used as is.

Consent: when the profile withdraws personalization, the Context has ``personalize=False`` and no
affinities, recent items, purchases or stated preferences; the cart, ``avoid``, budget, region and
age verification stay (they serve the request itself or protect the shopper).

Each :meth:`update` batch does one ``get_many`` and at most two ``swap_many`` (compare-and-set;
session TTL and long-term TTL); a record that another process wrote in between is re-read and
re-folded, so concurrent updates of the *same* key from two processes both land. Each record keeps
the ids of the events it folded (``State.e``), so a batch re-sent after a crash (its events are
duplicates in the store, but the crash may have come before the features were written) is folded
exactly once per record.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shopkeep.errors import StorageError, ValidationError
from shopkeep.features.config import FeatureConfig
from shopkeep.features.context import Context, ContextRequest, affinity_key
from shopkeep.features.state import State
from shopkeep.types import Event, EventType, to_epoch_ms

if TYPE_CHECKING:
    from shopkeep.catalog.snapshot import CatalogSnapshot
    from shopkeep.profiles.model import Profile
    from shopkeep.storage.base import OnlineState

__all__ = ["SessionFeatures", "filter_key", "state_keys"]

# Compare-and-set rounds per update before giving up (each round re-reads only the keys that lost).
_MAX_TRIES = 50

# Item interactions that enter the recent-items sequence (impressions, hovers, returns do not).
_SEQUENCE = frozenset({EventType.VIEW, EventType.CLICK, EventType.DWELL, EventType.ADD_TO_CART,
                       EventType.WISHLIST, EventType.PURCHASE})


def filter_key(attribute: str, value: str) -> str:
    """The affinity key of a filter event, normalized as the snapshot normalizes item attributes.

    >>> filter_key("SPF", "30.0"), filter_key("vegan", "True"), filter_key("skin_type", " Dry ")
    ('attr:spf=30', 'attr:vegan=true', 'attr:skin_type=dry')
    """
    text = value.strip().lower()
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if math.isfinite(number) and number == int(number) and not text.isdigit():
        text = str(int(number))
    return affinity_key("attr", attribute, text)


def state_keys(*, session_id: str | None = None, user_id: str | None = None,
               anonymous_id: str | None = None) -> tuple[str | None, str | None, str | None]:
    """The online-state keys ``(session, user, anonymous)`` for these ids (None where an id is absent)."""
    return (None if session_id is None else f"sess:{session_id}", None if user_id is None else f"user:{user_id}",
            None if anonymous_id is None else f"anon:{anonymous_id}")


def _long_key(event: Event) -> str | None:
    _, user, anon = state_keys(user_id=event.user_id, anonymous_id=event.anonymous_id)
    return user if user is not None else anon


class SessionFeatures:
    """Hot per-session and per-shopper features kept in an online state (memory or Redis).

    ``snapshot`` returns the current catalog snapshot (called once per :meth:`update` batch).
    """

    def __init__(self, online: OnlineState, snapshot: Callable[[], CatalogSnapshot],
                 config: FeatureConfig | None = None) -> None:
        self.online = online
        self.snapshot = snapshot
        self.config = config if config is not None else FeatureConfig()
        self._keys_of: dict[int, tuple[str, ...]] = {}
        self._keys_snapshot: CatalogSnapshot | None = None
        #: Records that another worker changed between this one's read and write (each re-folded).
        self.conflicts = 0

    # -- write path ---------------------------------------------------------------------------

    def update(self, events: Sequence[Event], *, retried: Collection[str] = ()) -> None:
        """Fold ``events`` into session and shopper state (synchronous: the next :meth:`context` on
        any process sharing the online state sees them).

        ``retried``: ids among ``events`` that may have been folded before (the store reported them
        as duplicates: a batch re-sent after a crash); each record folds only those it has not
        applied yet (:meth:`State.applied`). Every record is written by compare-and-set and, when
        another worker wrote it in between, re-read and folded again, so concurrent updates of one
        session all land. StorageError after ``_MAX_TRIES`` rounds of conflicts.
        """
        touched: dict[str, list[Event]] = {}
        for i, event in enumerate(events):
            if not isinstance(event, Event):
                raise ValidationError(f"events[{i}]", event, "must be an Event")
            long_key = _long_key(event)
            for key in (f"sess:{event.session_id}" if event.session_id else None, long_key):
                if key is not None:
                    touched.setdefault(key, []).append(event)
        if not touched:
            return
        again = frozenset(retried)
        snap = self.snapshot()
        pending = list(touched)
        for attempt in range(_MAX_TRIES):
            stored = self.online.get_many(pending)
            writes: dict[bool, tuple[dict[str, bytes | None], dict[str, bytes]]] = {True: ({}, {}), False: ({}, {})}
            for key in pending:
                raw = stored.get(key)
                state = State.decode(raw) if raw is not None else State()
                is_session = key.startswith("sess:")
                if self._fold_new(state, touched[key], again, snap, is_session=is_session):
                    expected, values = writes[is_session]
                    expected[key], values[key] = raw, state.encode()
            lost: list[str] = []
            for is_session, (expected, values) in writes.items():
                if values:
                    ttl = self.config.ttl_s if is_session else self.config.user_ttl_s
                    lost += self.online.swap_many(expected, values, ttl_s=ttl)
            if not lost:
                return
            self.conflicts += len(lost)
            pending = lost
            if attempt >= 2:
                time.sleep(random.uniform(0.0, 0.001 * attempt))  # spread workers that keep colliding
        raise StorageError(f"online state: {len(pending)} keys kept changing under {_MAX_TRIES} update tries",
                           {"keys": pending[:5]})

    def _fold_new(self, state: State, batch: Sequence[Event], again: frozenset[str], snap: CatalogSnapshot, *,
                  is_session: bool) -> bool:
        """Fold the events of ``batch`` this record has not applied, and mark them; False if none."""
        cap = self.config.max_applied
        todo = [e for e in batch
                if e.event_id not in again or not state.applied(e.event_id, to_epoch_ms(e.timestamp), cap)]
        if not todo:
            return False
        self._fold(state, todo, snap, is_session=is_session)
        state.mark([e.event_id for e in todo], [to_epoch_ms(e.timestamp) for e in todo], cap)
        return True

    def _item_keys(self, snap: CatalogSnapshot, item_id: str) -> tuple[str, ...]:
        if snap is not self._keys_snapshot:
            self._keys_of, self._keys_snapshot = {}, snap
        i = snap.index.get(item_id, -1)
        keys = self._keys_of.get(i)
        if keys is None:
            keys = (snap.affinity_keys(i) if i >= 0 else ()) + (f"item:{item_id}",)
            if i >= 0:
                self._keys_of[i] = keys
        return keys

    def _fold(self, state: State, batch: Iterable[Event], snap: CatalogSnapshot, *, is_session: bool) -> None:
        cfg = self.config
        half_life = cfg.half_life_s if is_session else cfg.user_half_life_s
        latest = state.t
        for event in sorted(batch, key=lambda e: e.timestamp):
            ts = to_epoch_ms(event.timestamp)
            latest = max(latest, ts)
            if not is_session and event.session_id:
                state.add_session(event.session_id, cfg.max_sessions)
            weight = cfg.weight(event.type)
            if event.type is EventType.FILTER and event.attribute and event.value is not None:
                if weight:
                    state.add({filter_key(event.attribute, event.value): weight}, ts, half_life)
                continue
            item = event.item_id
            if item is None:
                continue
            if weight:
                state.add(dict.fromkeys(self._item_keys(snap, item), weight), ts, half_life)
            if event.type in _SEQUENCE:
                state.touch(item, ts, 2 * cfg.max_recent)
            self._fold_cart(state, event, item, ts, snap)
        state.settle(half_life, max_keys=cfg.max_affinities if is_session else cfg.max_user_affinities,
                     min_weight=cfg.min_weight, latest_ms=latest)

    def _fold_cart(self, state: State, event: Event, item: str, ts: int, snap: CatalogSnapshot) -> None:
        cap = self.config.max_cart
        if event.type is EventType.ADD_TO_CART:
            state.cart(item, True, ts, cap)
        elif event.type is EventType.REMOVE_FROM_CART:
            state.cart(item, False, ts, cap)
        elif event.type is EventType.PURCHASE:
            state.cart(item, False, ts, cap)
            i = snap.index.get(item, -1)
            group = snap.items[i].group_id if i >= 0 else None
            state.purchase(item, group, ts, self.config.max_purchases)

    # -- read path ----------------------------------------------------------------------------

    def context(self, request: ContextRequest, profile: Profile | None = None) -> Context:
        """The request's :class:`Context`: hot state decayed to ``request.now`` (else the wall clock),
        session and long-term state merged, the profile's consent, region and preferences applied."""
        now = request.now if request.now is not None else datetime.now(UTC)
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValidationError("now", request.now, "must be timezone-aware (UTC)")
        now_ms = to_epoch_ms(now)
        user_id = request.user_id if request.user_id is not None else (profile.user_id if profile else None)
        sess_key, user_key, anon_key = state_keys(session_id=request.session_id, user_id=user_id,
                                                  anonymous_id=request.anonymous_id)
        wanted = [k for k in (sess_key, user_key, anon_key) if k is not None]
        personalize = profile.consent.personalization if profile is not None else True
        raw = self.online.get_many(wanted) if wanted else {}
        sess = State.decode(raw[sess_key]) if sess_key in raw else None
        longs = [State.decode(raw[k]) for k in (user_key, anon_key) if k in raw]
        cart = request.cart_item_ids or self._cart(sess, longs)
        return Context(
            request=request, now_ms=now_ms, user_id=user_id, anonymous_id=request.anonymous_id,
            session_id=request.session_id, region=request.region or (profile.region if profile else None),
            store=request.store, age_verified=bool(profile and profile.age_verified), personalize=personalize,
            recent_items=self._recent(sess, longs) if personalize else (),
            cart_items=cart,
            purchased=self._purchased(sess, longs) if personalize else {},
            affinities=self.merge(sess, longs, now_ms) if personalize else {},
            preferences=dict(profile.preferences) if profile and personalize else {},
            avoid=dict(profile.avoid) if profile else {},
            budget_max_minor=profile.budget_max.amount if profile and profile.budget_max else None,
            loyalty_tier=profile.loyalty_tier if profile else None,
        )

    def merge(self, session: State | None, long_term: Sequence[State], now_ms: int) -> dict[str, float]:
        """Session and long-term affinities at ``now_ms``, merged by the rule in the module docstring."""
        cfg = self.config
        sess = session.affinities_at(now_ms, cfg.half_life_s) if session is not None else {}
        longs: dict[str, float] = {}
        for state in long_term:
            for key, value in state.affinities_at(now_ms, cfg.user_half_life_s).items():
                longs[key] = longs.get(key, 0.0) + value
        if not longs:
            return sess
        if not sess:
            return longs
        mass_s = sum(abs(v) for v in sess.values())
        mass_l = sum(abs(v) for v in longs.values())
        scale = min(1.0, cfg.session_dominance * mass_s / mass_l) if mass_l > 0 else 0.0
        out = dict(sess)
        for key, value in longs.items():
            out[key] = out.get(key, 0.0) + scale * value
        return out

    def _recent(self, sess: State | None, longs: Sequence[State]) -> tuple[str, ...]:
        source = sess if sess is not None and sess.r else next((s for s in longs if s.r), None)
        return source.recent_items(self.config.max_recent) if source is not None else ()

    @staticmethod
    def _cart(sess: State | None, longs: Sequence[State]) -> tuple[str, ...]:
        for state in (*longs, sess):
            if state is not None and state.c:
                return state.cart_items()
        return ()

    @staticmethod
    def _purchased(sess: State | None, longs: Sequence[State]) -> dict[str, int]:
        out: dict[str, int] = {}
        for state in (*longs, sess):
            if state is not None:
                for item, ms in state.p.items():
                    if out.get(item, -1) < ms:
                        out[item] = ms
        return out

    # -- erasure ----------------------------------------------------------------------------------

    def forget(self, *, user_id: str | None = None, anonymous_id: str | None = None) -> int:
        """Delete the shopper's long-term state and every session it lists; returns keys deleted."""
        _, user_key, anon_key = state_keys(user_id=user_id, anonymous_id=anonymous_id)
        keys = [k for k in (user_key, anon_key) if k is not None]
        if not keys:
            raise ValidationError("user_id", None, "forget needs a user_id or an anonymous_id")
        found = self.online.get_many(keys)
        doomed = set(keys)
        for raw in found.values():
            doomed.update(f"sess:{s}" for s in State.decode(raw).s)
        return self.online.delete_many(sorted(doomed))

