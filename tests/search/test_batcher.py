"""The query encoder's batcher: texts of callers waiting while a forward pass runs go together into the
next one, every caller gets its own rows, and a failure reaches every caller of the failed batch."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from shopkeep.search.dense import QueryEncoder, _Batcher


def _vectors(texts: list[str]) -> np.ndarray:
    return np.asarray([[float(len(t)), float(sum(map(ord, t)))] for t in texts], dtype=np.float32)


def test_callers_queued_during_a_forward_pass_share_the_next_one() -> None:
    calls: list[list[str]] = []
    release = threading.Event()

    def fn(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        if len(calls) == 1:
            release.wait(10)  # hold the first pass until every other caller is queued
        return _vectors(texts)

    batcher = _Batcher(fn, max_batch=16)
    texts = [[f"query {i}"] for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(batcher.run, texts[0])
        while not calls:
            time.sleep(0.001)
        rest = [pool.submit(batcher.run, t) for t in texts[1:]]
        while len(batcher._queue) < 5:
            time.sleep(0.001)
        release.set()
        results = [first.result(), *(f.result() for f in rest)]
    assert len(calls) == 2 and sorted(calls[1]) == sorted(t[0] for t in texts[1:])
    for t, got in zip(texts, results, strict=True):
        np.testing.assert_array_equal(got, _vectors(t))
    assert batcher.calls == 2


def test_max_batch_splits_a_long_queue() -> None:
    sizes: list[int] = []
    release = threading.Event()

    def fn(texts: list[str]) -> np.ndarray:
        sizes.append(len(texts))
        if len(sizes) == 1:
            release.wait(10)
        return _vectors(texts)

    batcher = _Batcher(fn, max_batch=3)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(batcher.run, ["a"])
        while not sizes:
            time.sleep(0.001)
        rest = [pool.submit(batcher.run, [f"q{i}", f"r{i}"]) for i in range(4)]
        while len(batcher._queue) < 4:
            time.sleep(0.001)
        release.set()
        got = [f.result() for f in rest]
    assert first.result().shape == (1, 2)
    assert sizes[0] == 1 and all(s <= 3 for s in sizes[1:]) and sum(sizes) == 9
    for i, g in enumerate(got):
        np.testing.assert_array_equal(g, _vectors([f"q{i}", f"r{i}"]))


def test_a_failed_pass_raises_in_every_caller_of_that_batch_and_the_next_pass_runs() -> None:
    release = threading.Event()
    state = {"n": 0}

    def fn(texts: list[str]) -> np.ndarray:
        state["n"] += 1
        if state["n"] == 1:
            release.wait(10)
            return _vectors(texts)
        if state["n"] == 2:
            raise RuntimeError("model failed")
        return _vectors(texts)

    batcher = _Batcher(fn, max_batch=16)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(batcher.run, ["x"])
        while state["n"] == 0:
            time.sleep(0.001)
        failing = [pool.submit(batcher.run, [f"f{i}"]) for i in range(3)]
        while len(batcher._queue) < 3:
            time.sleep(0.001)
        release.set()
        first.result()
        for f in failing:
            with pytest.raises(RuntimeError, match="model failed"):
                f.result()
    np.testing.assert_array_equal(batcher.run(["again"]), _vectors(["again"]))


def test_hashing_encoder_does_not_batch() -> None:
    enc = QueryEncoder("hashing")
    enc.encode(["red dress", "blue dress"])
    assert enc.misses == 2 and enc.forward_calls == 0
