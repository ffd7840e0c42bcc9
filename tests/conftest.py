import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import settings

# Property tests draw the same examples on every run: a failure found once is found again,
# and CI does not depend on luck (a random draw found the seed=0, rate=0.875 counterexample
# of a test's own assumption only after many green runs).
settings.register_profile("skmm", derandomize=True)
settings.load_profile("skmm")


def _data_root():
    env = os.environ.get("SKMM_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def data_root():
    """The folder of real datasets; tests that need it skip where it is absent."""
    root = _data_root()
    if not (root / "lastfm2k").is_dir():
        pytest.skip(f"real data not found at {root} (set SKMM_DATA)")
    return root


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch intra-op thread for a test module, restored afterwards. The recommenders'
    models are tiny: a second thread only adds synchronisation (an order of magnitude slower
    epochs on a loaded 2-core machine), and a fixed count fixes the order of reductions."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def requires_cuda(test):
    """Mark a test as a CUDA test (``pytest -m cuda`` selects them, as ``make bench-gpu`` does)
    and skip it where no CUDA device is available."""
    test = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")(test)
    return pytest.mark.cuda(test)


def random_interactions(n_items, n_users, density, seed, *, n_isolated=0, n_blocks=1):
    """Binary items x users interactions with several components and isolated items.

    Items and users are split into ``n_blocks`` groups that never interact across groups, so the
    co-interaction graph has at least that many components; the last ``n_isolated`` items have
    no interaction at all. Small integer user counts give many ties in co-interaction counts.
    """
    rng = np.random.default_rng(seed)
    Y = np.zeros((n_items, n_users))
    active = n_items - n_isolated
    item_groups = np.array_split(np.arange(active), n_blocks)
    user_groups = np.array_split(np.arange(n_users), n_blocks)
    for items, users in zip(item_groups, user_groups):
        block = rng.random((len(items), len(users))) < density
        Y[np.ix_(items, users)] = block
    return sp.csr_matrix(Y)
