import numpy as np
import pytest

from skmm.datasets import load_mmrec, simulate_missing


def test_simulate_missing_all_removes_whole_items():
    X = np.random.default_rng(0).normal(size=(100, 5))
    X_miss, mask = simulate_missing(X, [3, 2], rate=0.3, mode="all", random_state=0)
    rows = mask.any(axis=1)
    assert rows.sum() == 30
    assert mask[rows].all() and not mask[~rows].any()
    assert np.isnan(X_miss[mask]).all() and np.array_equal(X_miss[~mask], X[~mask])
    again, _ = simulate_missing(X, [3, 2], rate=0.3, mode="all", random_state=0)
    np.testing.assert_array_equal(np.isnan(again), np.isnan(X_miss))


def test_simulate_missing_one_removes_one_block():
    X = np.random.default_rng(0).normal(size=(300, 6))
    _, mask = simulate_missing(X, [1, 2, 3], rate=0.5, mode="one", random_state=0)
    rows = mask.any(axis=1)
    assert rows.sum() == 150
    blocks = [mask[:, :1], mask[:, 1:3], mask[:, 3:]]
    lost = np.stack([b.all(axis=1) for b in blocks], axis=1)
    partial = np.stack([b.any(axis=1) & ~b.all(axis=1) for b in blocks], axis=1)
    assert not partial.any()
    assert (lost[rows].sum(axis=1) == 1).all()
    assert (lost[rows].sum(axis=0) > 30).all()  # every modality gets dropped sometimes


@pytest.mark.parametrize("kwargs, match", [
    ({"modalities": [2, 2]}, "sums to 4"),
    ({"rate": 1.5}, "rate"),
    ({"mode": "some"}, "mode"),
    ({"modalities": 5}, "modalities"),
])
def test_simulate_missing_bad_arguments(kwargs, match):
    args = {"modalities": [3, 2], "rate": 0.5} | kwargs
    with pytest.raises((ValueError, TypeError), match=match):
        simulate_missing(np.zeros((4, 5)), **args)


def test_load_mmrec_small_folder(tmp_path):
    (tmp_path / "toy.inter").write_text(
        "userID\titemID\tx_label\n0\t0\t0\n1\t2\t0\n0\t1\t1\n1\t1\t2\n")
    np.save(tmp_path / "a.npy", np.ones((3, 2)))
    np.save(tmp_path / "b.npy", np.zeros((3, 1)))
    data = load_mmrec(tmp_path)
    assert data.X.shape == (3, 3) and data.modalities == [2, 1]
    assert data.modality_names == ["a", "b"]
    assert data.Y_train.shape == (3, 2)
    assert data.Y_train[2, 1] == 1 and data.Y_val[1, 0] == 1 and data.Y_test[1, 1] == 1
    np.save(tmp_path / "c.npy", np.ones((2, 2)))
    with pytest.raises(ValueError, match="row counts"):
        load_mmrec(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_mmrec(tmp_path, ["nope"])
    np.save(tmp_path / "c.npy", np.ones((2, 2)))
    (tmp_path / "toy.inter").write_text("userID\titemID\tx_label\n0\t5\t0\n")
    with pytest.raises(ValueError, match="item ids up to 5"):
        load_mmrec(tmp_path, ["a"])


def test_new_item_split_partitions_items():
    from skmm.datasets import new_item_split

    train, val, test = new_item_split(np.zeros((1000, 2)), test_size=0.1, val_size=0.1,
                                      random_state=0)
    assert len(val) == len(test) == 100 and len(train) == 800
    assert np.array_equal(np.sort(np.concatenate([train, val, test])), np.arange(1000))
    again = new_item_split(np.zeros((1000, 2)), random_state=0)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again))
    with pytest.raises(ValueError, match="test_size"):
        new_item_split(np.zeros((10, 2)), test_size=1.5)
    with pytest.raises(ValueError, match="no training item"):
        new_item_split(np.zeros((10, 2)), test_size=0.5, val_size=0.5)


def test_make_multimodal_has_signal():
    from skmm.datasets import make_multimodal

    data = make_multimodal(400, 300, (16, 8), density=0.05, modality_noise=0.1, random_state=0)
    assert data.X.shape == (400, 24) and data.Y.shape == (400, 300)
    assert (np.asarray(data.Y.sum(axis=0)).ravel() == 20).all()
    # Items liked by the same users have more similar features than random pairs.
    Yd = data.Y.toarray()
    co = Yd @ Yd.T
    np.fill_diagonal(co, 0)
    Xc = data.X - data.X.mean(axis=0)
    Xn = Xc / np.linalg.norm(Xc, axis=1, keepdims=True)
    sim = Xn @ Xn.T
    assert sim[co >= 5].mean() > sim[co == 0].mean() + 0.1
