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


def batch_seed(seed: int, batch_seed: int | None) -> int:
    """The seed of a run's minibatch order: ``train.batch_seed`` if set (runs that share it share
    their order, e.g. across an ensemble), else the run's own seed."""
    return seed if batch_seed is None else batch_seed
