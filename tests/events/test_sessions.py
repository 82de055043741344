"""Sessionization by event time: in order, late, out of order, bridging; the result is order-free."""

from __future__ import annotations

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from shopkeep.events.sessions import Placement, Sessionizer, chains, place
from shopkeep.storage import open_store

GAP = 30 * 60 * 1000
MIN = 60 * 1000


def L(t: int, ident: str = "a") -> str:
    """A run label: time first, so that a time-ordered stream appends to one end of the partition index."""
    return f"{t:013d}:{ident}"


def gap_sessions(times: list[int], gap: int = GAP) -> list[list[int]]:
    """The reference: sort, split where consecutive events are more than ``gap`` apart."""
    out: list[list[int]] = []
    for t in sorted(times):
        if out and t - out[-1][-1] <= gap:
            out[-1].append(t)
        else:
            out.append([t])
    return out


def run(times: list[int]) -> tuple[list[str], list]:
    runs: list = []
    labels = [place(runs, "a", t, GAP) for t in times]
    return labels, runs


def test_in_order_events_split_on_the_gap() -> None:
    labels, runs = run([0, 10 * MIN, 29 * MIN + 10 * MIN, 90 * MIN])
    assert labels == [L(0), L(0), L(0), L(90 * MIN)]
    assert [s.session_id for s in chains("a", runs, GAP)] == ["a:0", f"a:{90 * MIN}"]


def test_exactly_the_gap_stays_in_the_session() -> None:
    labels, _ = run([0, GAP, 2 * GAP + 1])
    assert labels == [L(0), L(0), L(2 * GAP + 1)]


def test_late_event_inside_a_session_joins_it() -> None:
    labels, runs = run([0, 20 * MIN, 10 * MIN])
    assert labels == [L(0), L(0), L(0)]
    assert runs == [[L(0), 0, 20 * MIN]]


def test_late_event_before_a_session_extends_it_backwards() -> None:
    labels, runs = run([60 * MIN, 40 * MIN])
    assert labels == [L(60 * MIN), L(60 * MIN)]
    (session,) = chains("a", runs, GAP)
    assert session.session_id == f"a:{40 * MIN}"  # named by its earliest event, whatever arrived first
    assert (session.start_ms, session.end_ms) == (40 * MIN, 60 * MIN)


def test_late_event_bridging_two_sessions_merges_them() -> None:
    labels, runs = run([0, 50 * MIN, 25 * MIN])
    assert labels == [L(0), L(50 * MIN), L(0)]  # labels never change: the earlier run took it
    (session,) = chains("a", runs, GAP)
    assert session.session_id == "a:0" and session.labels == (L(0), L(50 * MIN))


def test_a_replayed_event_gets_its_original_label() -> None:
    times = [0, 50 * MIN, 25 * MIN, 200 * MIN, 180 * MIN]
    labels, runs = run(times)
    again = [place(runs, "a", t, GAP) for t in times]
    assert again == labels


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 24 * 60) , min_size=1, max_size=30), st.randoms(use_true_random=False))
def test_sessions_equal_the_gap_split_for_any_arrival_order(minutes: list[int], rnd: random.Random) -> None:
    times = [m * MIN for m in minutes]
    rnd.shuffle(times)
    labels, runs = run(times)
    sessions = chains("a", runs, GAP)
    expected = gap_sessions(times)
    assert [s.session_id for s in sessions] == [f"a:{group[0]}" for group in expected]
    assert [(s.start_ms, s.end_ms) for s in sessions] == [(g[0], g[-1]) for g in expected]
    label_to_session = {label: s.session_id for s in sessions for label in s.labels}
    for t, label in zip(times, labels, strict=True):
        (group,) = [g for g in expected if g[0] <= t <= g[-1]]
        assert label_to_session[label] == f"a:{group[0]}"
    for a, b in itertools.pairwise(runs):  # runs stay sorted and disjoint
        assert a[2] < b[1]


def test_sessionizer_state_survives_a_reopened_store(tmp_path) -> None:
    uri = f"sqlite:///{tmp_path}/s.db"
    items = [Placement("a", None, None, 0), Placement("a", None, None, 10 * MIN), Placement(None, "u", None, 0)]
    store = open_store(uri)
    sz = Sessionizer(store)
    states = sz.states_for(items)
    labels = sz.assign(items, states)
    sz.commit(states)
    store.close()
    store = open_store(uri)
    sz = Sessionizer(store)
    late = [Placement("a", None, None, 35 * MIN), Placement(None, "u", None, 5 * MIN)]
    states = sz.states_for(late)
    assert sz.assign(late, states) == [labels[0], L(0, "u")]
    sz.commit(states)
    assert [s.session_id for s in sz.sessions("a:a")] == ["a:0"]
    assert sz.sessions("a:a")[0].end_ms == 35 * MIN
    store.close()


def test_client_session_ids_are_kept() -> None:
    store = open_store("memory://")
    sz = Sessionizer(store)
    items = [Placement("a", "u", "s-9", 0), Placement("a", None, None, MIN)]
    states = sz.states_for(items)
    assert sz.assign(items, states) == ["s-9", L(MIN)]
    assert states["a:a"].parts == ["s-9"] and states["u:u"].parts == ["s-9"]
