"""FeatProp on real Last.fm 2K interactions and text features (skips without the data)."""

import numpy as np
import pytest

from skmm import FeatPropImputer, simulate_missing
from skmm.datasets import load_mmrec
from skmm.metrics._imputation import centred_cosine

pytestmark = pytest.mark.realdata


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lastfm_text_half_missing(data_root, seed):
    data = load_mmrec(data_root / "lastfm2k", ["all-MiniLM-L6-v2"])
    X_miss, mask = simulate_missing(data.X, data.modalities, 0.5, mode="all", random_state=seed)
    imputed = FeatPropImputer(device="cpu").fit_transform(X_miss, data.Y_train)
    rows = mask.any(axis=1)
    centre = data.X[~rows].mean(axis=0)
    score = centred_cosine(imputed[rows], data.X[rows], centre)
    # The reference note measured about 0.26 with the paper's defaults.
    assert score >= 0.2, score
    mean_fill = np.broadcast_to(centre, data.X[rows].shape)
    assert abs(centred_cosine(mean_fill, data.X[rows], centre)) < 1e-3
