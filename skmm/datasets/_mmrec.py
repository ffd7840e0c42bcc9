"""Reading MMRec-format dataset folders."""

import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.utils import Bunch
from sklearn.utils._param_validation import validate_params

_COLUMNS = ("userID", "itemID", "x_label")


@validate_params(
    {"path": [str, os.PathLike], "modalities": [list, tuple, None], "inter_file": [str, None]},
    prefer_skip_nested_validation=True,
)
def load_mmrec(path, modalities=None, *, inter_file=None):
    """Load an MMRec-format folder: an ``.inter`` TSV and one ``.npy`` feature file per modality.

    The ``.inter`` file has a header with at least ``userID``, ``itemID`` and ``x_label``
    (0 = train, 1 = validation, 2 = test), ids 0-based. Row ``r`` of each ``.npy`` is item ``r``.

    Parameters
    ----------
    path : str or path-like
        The dataset folder.
    modalities : list of str, default=None
        Feature files to load, by stem (``"vggish"`` for ``vggish.npy``), in column order.
        None loads every ``.npy`` in the folder, sorted by name. (A single name is given as a
        one-element list: a bare string is refused rather than read letter by letter.)
    inter_file : str, default=None
        The interaction file's name; None takes the folder's single ``.inter`` file whose name
        is the folder's, else the only one.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``X`` (n_items, n_features) float32 with the modality blocks side by side;
        ``Y_train``, ``Y_val``, ``Y_test`` binary CSR (n_items, n_users); ``modalities`` (block
        sizes); ``modality_names``; ``feature_names``.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"path={str(path)!r} is not a dataset folder.")
    inter = _find_inter(path, inter_file)
    with open(inter) as fh:
        header = fh.readline().rstrip("\n").split("\t")
    missing_cols = set(_COLUMNS) - set(header)
    if missing_cols:
        raise ValueError(f"{inter.name} lacks the column(s) {sorted(missing_cols)}; its header is "
                         f"{header}.")
    users, items, labels = _read_columns(inter, header)
    if (users < 0).any() or (items < 0).any():
        raise ValueError(f"{inter.name} has negative user or item ids; ids must be 0-based.")
    if not np.isin(labels, (0, 1, 2)).all():
        raise ValueError(f"{inter.name} has x_label values other than 0, 1, 2.")

    blocks, names = _read_modalities(path, modalities)
    n_items = int(items.max()) + 1 if items.size else 0
    if blocks:
        rows = {b.shape[0] for b in blocks}
        if len(rows) != 1:
            raise ValueError(f"feature files have different row counts: "
                             f"{dict(zip(names, (b.shape[0] for b in blocks)))}.")
        n_rows = rows.pop()
        if n_items > n_rows:
            raise ValueError(f"{inter.name} has item ids up to {n_items - 1} but the feature "
                             f"files have only {n_rows} rows.")
        n_items = n_rows
    else:
        _check_dense_ids(items, "item", inter.name)
    _check_dense_ids(users, "user", inter.name)
    n_users = int(users.max()) + 1 if users.size else 0

    def split(label):
        sel = labels == label
        Y = sp.csr_matrix((np.ones(sel.sum(), np.float32), (items[sel], users[sel])),
                          shape=(n_items, n_users))
        Y.sum_duplicates()
        Y.data[:] = 1.0
        return Y

    X = np.hstack(blocks) if blocks else np.zeros((n_items, 0), np.float32)
    return Bunch(
        X=X, Y_train=split(0), Y_val=split(1), Y_test=split(2),
        modalities=[b.shape[1] for b in blocks], modality_names=names,
        feature_names=np.array([f"{n}_{i}" for n, b in zip(names, blocks)
                                for i in range(b.shape[1])], dtype=object),
    )


def _read_modalities(path, modalities):
    """The feature blocks named by ``modalities`` (every .npy file when None), and names."""
    if modalities is None:
        modalities = sorted(p.stem for p in path.glob("*.npy"))
    bad = [m for m in modalities if not isinstance(m, str)]
    if bad:
        raise TypeError(f"modalities must be a list of feature-file names (str), got {bad}.")
    blocks = []
    for name in modalities:
        f = path / f"{name}.npy"
        if not f.is_file():
            raise FileNotFoundError(f"modality file {f} not found (modalities={list(modalities)};"
                                    f" the folder has {sorted(p.stem for p in path.glob('*.npy'))}"
                                    f").")
        blocks.append(_read_features(f))
    return blocks, list(modalities)


def _read_columns(inter, header):
    """The userID, itemID and x_label columns as int64 arrays; a malformed line is named."""
    cols = [header.index(c) for c in _COLUMNS]
    try:
        table = np.loadtxt(inter, delimiter="\t", skiprows=1, dtype=np.int64, ndmin=2,
                           usecols=cols)
    except ValueError:
        _raise_first_bad_line(inter, header, cols)
        raise  # pragma: no cover - loadtxt failed on something the scan accepts
    return table.T


def _raise_first_bad_line(inter, header, cols):
    """Find the first line numpy could not parse, and say where and why."""
    with open(inter) as fh:
        next(fh)
        for line_no, line in enumerate(fh, start=2):
            fields = line.rstrip("\n").split("\t")
            if line.strip() == "":
                continue
            for c in cols:
                if c >= len(fields):
                    raise ValueError(f"{inter}: line {line_no} has {len(fields)} field(s), but "
                                     f"column {header[c]!r} is field {c + 1} of the header.")
                try:
                    int(fields[c])
                except ValueError:
                    raise ValueError(f"{inter}: line {line_no}, column {header[c]!r}: "
                                     f"{fields[c]!r} is not an integer.") from None


def _read_features(f):
    """One modality file as float32 (n_items, d), with errors that name the file."""
    try:
        block = np.load(f, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"{f}: not a numeric .npy array ({exc}); feature files must hold a "
                         f"2-d float array, not pickled objects.") from None
    if not isinstance(block, np.ndarray) or block.ndim != 2:
        raise ValueError(f"{f.name} must be a 2-d (n_items, d) array, got "
                         f"{getattr(block, 'shape', type(block).__name__)}.")
    if not (np.issubdtype(block.dtype, np.floating) or np.issubdtype(block.dtype, np.integer)):
        raise ValueError(f"{f.name} must hold real numbers, got dtype {block.dtype}.")
    return block.astype(np.float32, copy=False)


def _check_dense_ids(ids, what, name):
    """MMRec ids are 0-based and dense; a huge id would allocate that many rows."""
    if ids.size and ids.max() + 1 > 2 * np.unique(ids).size + 1024:
        raise ValueError(f"{name}: {what} ids go up to {ids.max()} for only "
                         f"{np.unique(ids).size} distinct {what}s; MMRec ids must be 0-based "
                         f"and consecutive (re-index them first).")


def _find_inter(path, inter_file):
    if inter_file is not None:
        f = path / inter_file
        if not f.is_file():
            raise FileNotFoundError(f"interaction file {f} not found.")
        return f
    candidates = sorted(path.glob("*.inter"))
    # MMRec names the main file after the dataset; variants add suffixes (lfm2k_og_ids.inter).
    preferred = [c for c in candidates if c.stem == path.name
                 or all(o.stem.startswith(c.stem) for o in candidates)]
    if preferred:
        return preferred[0]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise FileNotFoundError(f"no .inter file in {path}.")
    raise ValueError(f"several .inter files in {path} ({[c.name for c in candidates]}); pass "
                     f"inter_file.")
