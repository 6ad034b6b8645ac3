"""Explicit random streams: every source of randomness gets its own generator derived from the seed."""

from __future__ import annotations

import hashlib

import torch


def derive_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for `stream` ("model", "data", "batches", ...) derived from the run seed."""
    digest = hashlib.sha256(f"{seed}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def generator(seed: int, stream: str) -> torch.Generator:
    """A CPU `torch.Generator` seeded for `stream`; same (seed, stream), same numbers."""
    return torch.Generator().manual_seed(derive_seed(seed, stream))
