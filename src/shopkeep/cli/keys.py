"""``shopkeep keys create --scopes read,ingest``: mint an API key; ``shopkeep keys hash KEY --scopes ...``.

``create`` prints the new key once (it is not stored anywhere: keep it) and the config entry that holds
only its salted hash, for ``serving.api_keys`` (comma-separated) or a ``serving.api_keys_file`` (one a
line). ``--json`` prints both as JSON.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add the ``keys`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser("keys", help="create API keys (printed once; config holds hashes)")
    actions = p.add_subparsers(dest="keys_action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="mint a new random key with scopes")
    create.add_argument("--scopes", required=True, help="comma-separated scopes, e.g. read,search or admin")
    create.add_argument("--json", action="store_true", help="print {key, entry} as JSON")
    hashed = actions.add_parser("hash", help="the config entry of an existing key")
    hashed.add_argument("key", help="the plaintext key")
    hashed.add_argument("--scopes", required=True, help="comma-separated scopes")
    hashed.add_argument("--json", action="store_true", help="print {entry} as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print a key (create only) and its hashed config entry; unknown scopes are a ConfigError (exit 2)."""
    from shopkeep.serving.auth import ApiKeys, hash_key, new_key

    key = new_key() if args.keys_action == "create" else args.key
    scopes = "+".join(s.strip() for s in args.scopes.replace("+", ",").split(",") if s.strip())
    entry = f"{hash_key(key)}:{scopes}"
    ApiKeys.parse(entry)  # validates the scopes with the same message the server gives
    if args.json:
        print(json.dumps({"entry": entry, **({"key": key} if args.keys_action == "create" else {})}))
        return 0
    if args.keys_action == "create":
        print(f"API key (shown once, store it now): {key}")
    print(f"config entry: {entry}")
    print(f"  e.g. SHOPKEEP_SERVING__API_KEYS='{entry}' (comma-separate several) or one line of serving.api_keys_file")
    return 0
