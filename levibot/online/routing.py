"""Canary routing: which variant serves a request.

With a client key the assignment is sticky: the key's sha256 is mapped to [0, 1) and
compared with the canary fraction, so a client stays on one variant while the fraction
is unchanged. Without a key, a random draw decides.
"""

from __future__ import annotations

import hashlib
import random

PROD, CANARY = "prod", "canary"


def key_to_unit(key: str) -> float:
    """A deterministic, uniform number in [0, 1) for a client key."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_variant(
    *, fraction: float, canary_open: bool, client_id: str | None, rng: random.Random
) -> str:
    """'canary' with probability `fraction` when the canary is open, else 'prod'."""
    if not canary_open or fraction <= 0:
        return PROD
    draw = key_to_unit(client_id) if client_id else rng.random()
    return CANARY if draw < fraction else PROD
