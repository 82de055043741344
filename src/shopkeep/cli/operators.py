"""``shopkeep operators run``: run the operator watchers once and file their proposals (nothing is applied)."""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register", "run_operators"]


def register(sub: Any) -> None:
    """Add the ``operators`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser("operators", help="operator agents: propose, never apply")
    acts = p.add_subparsers(dest="operators_command", required=True, metavar="ACTION")
    r = acts.add_parser("run", help="run the watchers once; proposals wait for approval (GET /v1/operators/proposals)")
    r.add_argument("--store", help="storage URI (default: storage.uri of the config)")
    r.add_argument("--online", help="online state URI for today's pacing counters (default: storage.online_uri)")
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.set_defaults(handler=run_operators)


def run_operators(args: argparse.Namespace) -> int:
    """Open the store, run stock-out, pacing and margin watchers, print what was filed."""
    from shopkeep.catalog import CatalogRepository
    from shopkeep.config import load_config
    from shopkeep.pipeline.operators import OperatorDesk, run_watchers
    from shopkeep.policy import PolicyStore
    from shopkeep.storage import open_online_state, open_store

    config = load_config(getattr(args, "config", None))
    store = open_store(args.store or config.storage.uri)
    online = open_online_state(args.online or config.storage.online_uri)
    try:
        policies = PolicyStore(store)

        def get_policy() -> dict[str, Any]:
            active = policies.active()
            return {**dict(active.document), "version": active.version.number}

        def put_policy(doc: Any) -> dict[str, Any]:
            saved = policies.save(doc)
            return {**dict(saved.document), "version": saved.version.number}

        desk = OperatorDesk(store, get_policy, put_policy)
        filed = run_watchers(desk, store, online, CatalogRepository(store))
        pending = desk.list(status="pending")
    finally:
        online.close()
        store.close()
    if args.json:
        print(json.dumps({"filed": [p.to_dict() for p in filed], "pending": len(pending)}, indent=2))
    else:
        for p in filed:
            print(f"{p.proposal_id}  [{p.agent}] {p.title}\n    effect: {p.expected_effect}")
        print(f"{len(filed)} proposal(s) filed, {len(pending)} pending approval")
    return 0
