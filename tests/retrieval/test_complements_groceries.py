"""Small version of benchmarks/quality/complements.py on the Groceries baskets (shared data)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "quality" / "complements.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("complements_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.data
def test_complements_beat_popularity_on_held_out_baskets(shared_data: Path) -> None:
    bench = _bench()
    baskets = bench.read_baskets(shared_data / "groceries-arules" / "groceries.csv")[:3000]
    train, test = bench.split(baskets, seed=0)
    assert len(test) == 600 and not {id(b) for b in train} & {id(b) for b in test}
    result = bench.evaluate(baskets, seed=0, min_count=2, min_lift=0.0)
    comp, pop = result["complements+popular"], result["popular"]
    assert comp["n"] == pop["n"] > 300
    assert comp["MRR"] > pop["MRR"] and comp["HR@10"] > pop["HR@10"]
    assert result["complements"]["HR@10"] <= comp["HR@10"]  # backfill never hurts
    again = bench.evaluate(baskets, seed=0, min_count=2, min_lift=0.0)
    assert again == result, "seeded: the same split and hidden items"
