"""`StoreError`: a store file that cannot be used, reported in one line that names the file."""

from __future__ import annotations


class StoreError(Exception):
    """The store cannot do what was asked: bad or foreign file, locked, missing run or artifact.

    ``str(err)`` is always a single line that names the file and the problem.
    """

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
