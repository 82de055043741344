"""``python -m shopkeep.simulate``: generate a store and print its calibration report."""

from __future__ import annotations

import argparse
import json
import time

from shopkeep.simulate.calibration import calibration_report

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Generate a store and print its calibration report as JSON (with the generation time)."""
    from shopkeep.simulate.store import StoreConfig, generate_store

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--items", type=int, default=3000)
    p.add_argument("--shoppers", type=int, default=2000)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    store = generate_store(StoreConfig(n_items=args.items, n_shoppers=args.shoppers, n_days=args.days,
                                       seed=args.seed))
    report = calibration_report(store)
    report["generate_seconds"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
