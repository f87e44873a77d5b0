"""`chat-stream keys list|rotate|revoke|restore`: rehearse a key rotation on the local stack.

They edit the file `[auth] signing_keys_path` names (`supabase gen signing-key` writes the same
file); the stack reads it when it starts, so restart `chat-stream dev` after each step:

    chat-stream keys rotate --standby   # a new key, published in the JWKS, signing nothing
    chat-stream keys rotate             # the standby key signs; the old one: previously used
    chat-stream keys revoke <kid>       # its tokens get 401 from the next start on
    chat-stream keys restore <kid>      # undo: previously used again, its tokens verify
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.local import signing_keys
from app.local.auth.config import CONFIG_PATH
from app.local.keys_config import load_keys_config

EXIT_USAGE = 2


def run(args: argparse.Namespace, config_path: Path = CONFIG_PATH) -> int:
    path = load_keys_config(config_path).signing_keys_path
    if path is None:
        print(
            f"chat-stream keys: set [auth] signing_keys_path in {config_path} first, e.g. "
            '`signing_keys_path = "./signing_keys.json"`, and create the file with '
            "`supabase gen signing-key --algorithm ES256` or `chat-stream keys rotate`",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        if args.keys_command == "rotate" and not path.exists():
            signing_keys.write_keys(path, [signing_keys.generate(args.algorithm)])
            print(f"created {path} with one {args.algorithm} key in use")
        elif args.keys_command == "rotate" and args.standby:
            new = signing_keys.add_standby(path, args.algorithm)
            print(f"standby: {new['kid']} ({args.algorithm}), published, signing nothing yet")
        elif args.keys_command == "rotate":
            now = signing_keys.rotate(path, args.algorithm)
            print(f"in use: {now['kid']} ({signing_keys.algorithm_of(now)})")
        elif args.keys_command == "revoke":
            signing_keys.revoke(path, args.kid)
            print(
                f"revoked: {args.kid} (kept in {signing_keys.revoked_path(path)}; `restore` undoes)"
            )
        elif args.keys_command == "restore":
            signing_keys.restore(path, args.kid)
            print(f"restored: {args.kid}, previously used")
        listed = signing_keys.statuses(signing_keys.read_keys(path))
        for status in listed + signing_keys.revoked_statuses(path):
            print(f"  {status.kid}  {status.algorithm}  {status.state}")
    except signing_keys.SigningKeysError as exc:
        print(f"chat-stream keys: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.keys_command != "list":
        print("Restart `chat-stream dev` for the stack to use the file.")
    return 0
