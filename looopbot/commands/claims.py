"""`claim` and `unclaim`: named leases on shared resources (DESIGN §8).

The holder is `--session`, else $LOOOPBOT_SESSION_ID (set for every worker), else "human".
No beat lock and no beat commit: a claim is a ref, not a file in the working tree.
"""

from __future__ import annotations

import argparse
import os
import time

from looopbot.datadir import locate
from looopbot.errors import EXIT_OK
from looopbot.workers import claims


def _holder(session: str | None) -> str:
    return session or os.environ.get("LOOOPBOT_SESSION_ID") or claims.HUMAN


def claim(args: argparse.Namespace) -> int:
    # Name and holder are checked before the data dir is even looked up: an unsafe name
    # must reach no path and no ref.
    claims.ref_of(args.name)
    holder = _holder(args.session)
    claims.check_holder(holder)
    dd = locate(args.data_dir)
    held = claims.claim(dd, args.name, holder, args.ttl, time.time())
    print(f"claimed {held.name} for {claims.describe(held)}")
    return EXIT_OK


def unclaim(args: argparse.Namespace) -> int:
    claims.ref_of(args.name)
    holder = _holder(args.session)
    claims.check_holder(holder)
    dd = locate(args.data_dir)
    claims.unclaim(dd, args.name, holder, time.time())
    print(f"unclaimed {args.name}")
    return EXIT_OK
