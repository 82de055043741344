"""Attribute-extraction precision/recall on the Sephora cosmetics table (shared/data/sephora-cosmetics).

    .venv/bin/python benchmarks/quality/extraction_sephora.py [--data ../shared/data/sephora-cosmetics] [--json]

Ground truth and its limits:
* skin types: Sephora's five 0/1 "good for" flags. The extractor sees only the product name and the
  ingredient list (the skin_type attribute is removed first); names rarely state a skin type, so
  recall is low by construction. Scored per (item, skin type) pair.
* fragrance-free: derived from the ingredient list (known list, none of fragrance/parfum/perfume;
  placeholder lists are unknown and excluded). With the list in view the extractor applies nearly
  the same rule, so that row is a parser check, not an independent accuracy figure; the "name only"
  row withholds the list and shows what the title alone supports.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from shopkeep.catalog.extract import FRAGRANCE_TERMS, SKIN_TYPES, extract_item, ingredient_text, ingredients_known
from shopkeep.catalog.loaders import load_items
from shopkeep.catalog.mapping import load_mapping
from shopkeep.types import Item

ROOT = Path(__file__).resolve().parents[2]


def _prf(tp: int, fp: int, fn: int) -> dict[str, float | int]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": round(p, 3), "recall": round(r, 3)}


def fragrance_truth(item: Item) -> bool | None:
    text = ingredient_text(item)
    if text is None or not ingredients_known(text):
        return None
    return not any(t in text.lower() for t in FRAGRANCE_TERMS)


def skin_rows(items: list[Item], min_conf: float) -> dict[str, float | int]:
    tp = fp = fn = covered = 0
    for it in items:
        truth = set(it.attributes.get("skin_type", ()))  # type: ignore[arg-type]
        bare = replace(it, attributes={k: v for k, v in it.attributes.items() if k != "skin_type"})
        got = next((p for p in extract_item(bare) if p.field == "skin_type" and p.confidence >= min_conf), None)
        pred = set(got.value) if got is not None else set()  # type: ignore[arg-type]
        covered += bool(pred)
        tp += len(pred & truth)
        fp += len(pred - truth)
        fn += len(truth - pred)
    return {**_prf(tp, fp, fn), "items_with_a_prediction": covered}


def fragrance_rows(items: list[Item], min_conf: float, name_only: bool) -> dict[str, float | int]:
    tp = fp = fn = covered = placeholder_predictions = 0
    for it in items:
        truth = fragrance_truth(it)
        src = replace(it, attributes={}) if name_only else it
        got = next((p for p in extract_item(src) if p.field == "fragrance_free" and p.confidence >= min_conf), None)
        if truth is None:
            placeholder_predictions += got is not None and not name_only
            continue
        covered += got is not None
        pred = got is not None and got.value is True
        tp += pred and truth
        fp += pred and not truth
        fn += (not pred) and truth
    return {**_prf(tp, fp, fn), "items_with_a_prediction": covered, "placeholder_predictions": placeholder_predictions}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "sephora-cosmetics"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    path = Path(args.data) / "cosmetics.csv"
    if not path.exists():
        print(f"missing {path}", file=sys.stderr)
        return 2
    console = Console(stderr=True)
    with console.status(f"loading {path} ..."):
        loaded = load_items(path, mapping=load_mapping(ROOT / "examples/mappings/sephora_cosmetics.toml"),
                            on_error="skip")
    items = list(loaded.items)
    truth_ff = Counter(fragrance_truth(it) for it in items)
    flagged = [it for it in items if it.attributes.get("skin_type")]
    rows = {
        "skin_type (name+ingredients), all items": skin_rows(items, 0.0),
        "skin_type, items with >=1 flag": skin_rows(flagged, 0.0),
        "fragrance_free (ingredients), conf>=0": fragrance_rows(items, 0.0, False),
        "fragrance_free (ingredients), conf>=0.8": fragrance_rows(items, 0.8, False),
        "fragrance_free (name only)": fragrance_rows(items, 0.0, True),
    }
    fields = Counter(p.field for it in items for p in extract_item(it))
    out = {"data": str(path), "items": len(items), "rejected_rows": len(loaded.rejected),
           "fragrance_truth": {"fragrance_free": truth_ff[True], "has_fragrance": truth_ff[False],
                               "unknown_placeholder": truth_ff[None]},
           "items_with_skin_flags": len(flagged), "skin_types": list(SKIN_TYPES), "rows": rows,
           "proposals_by_field": dict(fields), "python": platform.python_version()}
    if args.json:
        print(json.dumps(out))
        return 0
    table = Table("task", "precision", "recall", "tp", "fp", "fn", "items predicted",
                  title=f"{path} ({len(items)} items)")
    for name, r in rows.items():
        table.add_row(name, f"{r['precision']:.3f}", f"{r['recall']:.3f}", str(r["tp"]), str(r["fp"]), str(r["fn"]),
                      str(r["items_with_a_prediction"]))
    Console().print(table)
    Console().print({k: v for k, v in out.items() if k != "rows"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
