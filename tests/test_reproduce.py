import csv

import numpy as np

from skmm import reproduce as rp
from skmm.__main__ import main


def test_featprop_experiment_writes_csv_plot_and_table(tmp_path):
    data = rp.default_data(quick=True)
    rows = rp.reproduce_featprop(data, seeds=1, rates=(0.5,), vbpr_params={"max_epochs": 1},
                                 out=tmp_path, progress=False)
    assert {r["strategy"] for r in rows} == set(rp.FEATPROP_STRATEGIES)
    assert all(0 <= r["recall@20"] <= 1 and 0 <= r["ndcg@20"] <= 1 for r in rows)
    with open(tmp_path / "featprop.csv") as fh:
        assert len(list(csv.DictReader(fh))) == len(rows)
    assert (tmp_path / "featprop.png").stat().st_size > 1000
    header, table = rp.summarize(rows, ("rate", "strategy"))
    assert header[:2] == ["rate", "strategy"] and len(table) == 4
    assert "50%" in rp.format_table(header, table)


def test_summarize_means_and_stds():
    rows = [{"m": "a", "recall@20": v, "ndcg@20": 2 * v} for v in (0.1, 0.3)]
    header, table = rp.summarize(rows, ("m",))
    np.testing.assert_allclose(table[0][1:], [0.2, 0.1, 0.4, 0.2])


def test_default_data_splits_interactions():
    data = rp.default_data(quick=True)
    total = data.Y_train + data.Y_val + data.Y_test
    assert (total != data.Y).nnz == 0
    assert data.Y_train.multiply(data.Y_test).nnz == 0
    assert 0.75 < data.Y_train.nnz / data.Y.nnz < 0.85


def test_command_line_featprop(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(rp, "QUICK_RATES", (0.5,))
    assert main(["reproduce", "featprop", "--quick", "--seeds", "1", "--out",
                 str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "featprop" in printed and "recall@20 mean" in printed
    assert (tmp_path / "featprop.csv").exists()


def test_milk_experiment_protocol(tmp_path, monkeypatch):
    """New items are never fitted; MTMT training items miss modalities unless imputed."""
    seen = []

    class Recording(rp.MILKRecommender):
        def fit(self, X, y):
            seen.append(("fit", X.shape[0], np.isnan(X).any(axis=1).mean(), self.environments))
            return super().fit(X, y)

        def decision_function(self, X):
            seen.append(("score", X.shape[0], np.isnan(X).any(axis=1).mean(), self.environments))
            return super().decision_function(X)

    monkeypatch.setattr(rp, "MILKRecommender", Recording)
    data = rp.default_data(quick=True)
    n_items = data.X.shape[0]
    rows = rp.reproduce_milk(data, seeds=1, milk_params={"max_epochs": 2}, out=tmp_path,
                             progress=False)
    got = {(r["setting"], r["model"]) for r in rows}
    assert got == {("FTFT", "MILK"), ("FTFT", "DUIF-like"), ("FTMT", "MILK"),
                   ("FTMT", "DUIF-like"), ("MTMT", "MILK"), ("MTMT", "DUIF-like"),
                   ("MTMT", "MILK + FeatProp"), ("MTMT", "DUIF-like + FeatProp")}
    assert all(0 <= r["recall@20"] <= 1 and 0 <= r["ndcg@20"] <= 1 for r in rows)
    fits = [s for s in seen if s[0] == "fit"]
    scores = [s for s in seen if s[0] == "score"]
    assert {s[1] for s in fits} == {n_items - n_items // 10}
    assert {s[1] for s in scores} == {n_items // 10}
    # Two full-modality fits, two with 30% of items missing a modality, two imputed.
    assert sorted(round(s[2], 2) for s in fits) == [0.0, 0.0, 0.0, 0.0, 0.3, 0.3]
    # FTFT scores complete items; FTMT and MTMT items half of which miss one modality, except
    # behind the imputer, which fills them first.
    assert sorted(round(s[2], 2) for s in scores) == [0.0] * 4 + [0.5] * 4
    assert {s[3] for s in fits} == {"cyclic", "none"}
    with open(tmp_path / "milk.csv") as fh:
        assert len(list(csv.DictReader(fh))) == len(rows) == 8
    assert (tmp_path / "milk.png").stat().st_size > 1000
    with open(tmp_path / "milk_summary.csv") as fh:
        summary = list(csv.DictReader(fh))
    assert [r["setting"] for r in summary] == ["FTFT"] * 2 + ["FTMT"] * 2 + ["MTMT"] * 4
    # One seed: the std is 0 and the mean is the row's value.
    first = next(r for r in rows if r["setting"] == "FTFT" and r["model"] == "MILK")
    assert summary[0]["ndcg@20"] == f"{first['ndcg@20']:.4f} ± 0.0000"


def test_command_line_all(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(rp, "QUICK_RATES", (0.5,))
    assert main(["reproduce", "all", "--quick", "--seeds", "1", "--threads", "1", "--out",
                 str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "featprop" in printed and "milk" in printed and "MTMT" in printed
    assert {p.name for p in tmp_path.iterdir()} == {
        f"{name}{suffix}" for name in ("featprop", "milk")
        for suffix in (".csv", ".png", "_summary.csv")}
