"""IdentityGraph on memory, SQLite and PostgreSQL: link, move, unlink, replays, batch lookups."""

from __future__ import annotations

import pytest

from shopkeep.errors import NotFoundError, ValidationError
from shopkeep.profiles import IdentityGraph
from shopkeep.storage import Store, iter_collection


def _consistent(store: Store) -> None:
    """Both directions agree: every user doc lists exactly the anonymous ids pointing at it."""
    docs = dict(iter_collection(store, "identity"))
    forward = {k[5:]: d["user_id"] for k, d in docs.items() if k.startswith("anon:") and d["user_id"]}
    backward = {a: k[5:] for k, d in docs.items() if k.startswith("user:") for a in d["anonymous_ids"]}
    assert forward == backward


def test_link_is_idempotent_and_batched(store: Store) -> None:
    graph = IdentityGraph(store)
    assert graph.link_many([("d1", "u1", 10), ("d2", "u1", 11), ("d3", "u2", 12)]) == 3
    assert graph.link_many([("d1", "u1", 10), ("d1", "u1", 50)]) == 0
    assert graph.user_of(["d1", "d2", "d3", "unknown"]) == {"d1": "u1", "d2": "u1", "d3": "u2"}
    assert graph.anonymous_ids("u1") == ("d1", "d2") and graph.anonymous_ids("nobody") == ()
    assert graph.anonymous_ids_many(["u2", "u1"]) == {"u2": ("d3",), "u1": ("d1", "d2")}
    assert graph.link_many([]) == 0
    _consistent(store)


def test_a_later_link_moves_the_anonymous_id_and_is_recorded(store: Store) -> None:
    graph = IdentityGraph(store)
    graph.link_many([("d1", "u1", 100)])
    assert graph.link_many([("d1", "u2", 200)]) == 1
    assert graph.user_of(["d1"]) == {"d1": "u2"}
    assert graph.anonymous_ids("u1") == () and graph.anonymous_ids("u2") == ("d1",)
    assert graph.link_many([("d1", "u1", 150)]) == 0  # older than the move: a replay, ignored
    assert graph.user_of(["d1"]) == {"d1": "u2"}
    assert [h["action"] for h in graph.history("d1")] == ["link", "move"]
    assert graph.history("d1")[1] == {"action": "move", "user_id": "u2", "from_user_id": "u1", "ts_ms": 200}
    _consistent(store)


def test_out_of_order_batch_ends_like_the_ordered_one(store: Store) -> None:
    graph = IdentityGraph(store)
    graph.link_many([("d1", "u3", 30), ("d1", "u1", 10), ("d1", "u2", 20)])
    assert graph.user_of(["d1"]) == {"d1": "u3"}
    assert graph.anonymous_ids("u1") == graph.anonymous_ids("u2") == ()
    _consistent(store)


def test_unlink_undoes_a_wrong_link_and_survives_replay(store: Store) -> None:
    graph = IdentityGraph(store)
    graph.link_many([("d1", "u1", 10), ("d2", "u1", 10)])
    graph.unlink("d1", "u1")
    assert graph.user_of(["d1", "d2"]) == {"d2": "u1"} and graph.anonymous_ids("u1") == ("d2",)
    assert graph.link_many([("d1", "u1", 10)]) == 0  # replaying the wrong link does not bring it back
    assert graph.link_many([("d1", "u1", 11)]) == 1  # a genuinely newer login does
    with pytest.raises(NotFoundError):
        graph.unlink("d2", "u9")
    with pytest.raises(NotFoundError):
        graph.unlink("never", "u1")
    _consistent(store)


@pytest.mark.parametrize(
    ("links", "field"),
    [([("", "u", 1)], "links[0].anonymous_id"), ([("a", None, 1)], "links[0].user_id"),
     ([("a", "u", 1), ("a", "u", -1)], "links[1].ts_ms"), ([("a", "u", 1.5)], "links[0].ts_ms"),
     ([("a", "u")], "links[0]")],
)
def test_bad_links_are_refused_and_nothing_is_written(store: Store, links: list[tuple[str, str, int]],
                                                     field: str) -> None:
    graph = IdentityGraph(store)
    with pytest.raises(ValidationError) as exc:
        graph.link_many(links)
    assert exc.value.field == field
    assert store.count("identity") == 0
    with pytest.raises(ValidationError):
        graph.user_of("a")  # type: ignore[arg-type]
