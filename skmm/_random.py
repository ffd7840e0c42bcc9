"""Seeding torch's global generator for one block of code, safely across threads."""

import threading
from contextlib import contextmanager

import torch

# torch's module constructors draw their initial weights from the process-wide CPU generator.
# Two fits seeding it at once from different threads (joblib's threading backend, a thread
# pool) would draw from each other's streams; holding this lock while seeding and drawing
# makes every fit's initialisation depend on its own seed only.
_GLOBAL_GENERATOR_LOCK = threading.Lock()


@contextmanager
def seeded_global_generator(seed):
    """Run the block with torch's global CPU generator seeded with ``seed``, then restore it.

    The caller's random state is left as it was, and concurrent blocks (other threads) wait:
    keep the block short, e.g. the construction of a module, not a training loop.
    """
    with _GLOBAL_GENERATOR_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
