"""The experiments' data: the bundled synthetic catalogue or an MMRec-format folder."""

import hashlib
from pathlib import Path


def default_data(random_state=0, quick=False):
    """The bundled default data: a synthetic catalogue with planted taste structure.

    Interactions are split at random into train / validation / test (80 / 10 / 10).

    Parameters
    ----------
    random_state : int, default=0
        Seeds :func:`~skmm.datasets.make_multimodal` and the split.
    quick : bool, default=False
        600 items and 400 users instead of 1500 and 1000.

    Returns
    -------
    data : Bunch
        As :func:`~skmm.datasets.make_multimodal`, plus ``Y_train``, ``Y_val``, ``Y_test``,
        ``name``, ``path`` (None) and ``modality_names``.

    Examples
    --------
    >>> from skmm.reproduce import default_data
    >>> data = default_data(quick=True)
    >>> data.X.shape, data.Y_train.shape, data.modalities
    ((600, 96), (600, 400), [64, 32])
    """
    from ..datasets import make_multimodal

    n_items, n_users = (600, 400) if quick else (1500, 1000)
    data = make_multimodal(n_items, n_users, (64, 32), density=0.03, random_state=random_state)
    Y_train, Y_val, Y_test = _split_interactions(data.Y, (0.8, 0.1, 0.1), random_state)
    data.update(Y_train=Y_train, Y_val=Y_val, Y_test=Y_test, name="synthetic", path=None,
                modality_names=["modality_a", "modality_b"])
    return data


def _split_interactions(Y, fractions, random_state):
    import numpy as np
    import scipy.sparse as sp

    coo = Y.tocoo()
    u = np.random.default_rng(random_state).random(coo.nnz)
    edges = np.cumsum(fractions)[:-1]
    part = np.searchsorted(edges, u, side="right")
    return tuple(sp.csr_matrix((coo.data[part == p], (coo.row[part == p], coo.col[part == p])),
                               shape=Y.shape) for p in range(len(fractions)))


def load_data(path, modalities=None, quick=False):
    """Real data from an MMRec-format folder, or the default synthetic data when None.

    Parameters
    ----------
    path : str or path or None
        An MMRec-format folder (see :func:`~skmm.datasets.load_mmrec`); None for
        :func:`default_data`.
    modalities : list of str, default=None
        Feature files to read, by stem; None reads every ``.npy`` of the folder. Only with a
        ``path``.
    quick : bool, default=False
        Passed to :func:`default_data`; real data is read whole.

    Returns
    -------
    data : Bunch
        With ``name`` set to the folder's name and ``path`` to its resolved path.
    """
    if path is None:
        if modalities is not None:
            raise ValueError("modalities can only be chosen for real data (a path); the "
                             "synthetic data has two fixed modalities.")
        return default_data(quick=quick)
    from ..datasets import load_mmrec

    data = load_mmrec(path, modalities)
    data.name = Path(path).resolve().name
    data.path = str(Path(path).resolve())
    return data


def interactions(data):
    """Every interaction of ``data`` as one binary float32 CSR matrix (n_items, n_users)."""
    import numpy as np
    import scipy.sparse as sp

    Y = data.Y if "Y" in data else data.Y_train + data.Y_val + data.Y_test
    Y = sp.csr_matrix(Y, dtype=np.float32)
    Y.data[:] = 1.0
    return Y


def data_signature(data):
    """What identifies the data of a run, for the results' configuration file.

    The features and every interaction matrix are hashed, so that results are never resumed
    on other data; the folder's ``path`` is recorded but not compared (a folder may move).

    Parameters
    ----------
    data : Bunch
        As returned by :func:`load_data`.

    Returns
    -------
    signature : dict
        ``name``, ``path``, ``modalities`` (names), ``n_items``, ``n_users`` and ``sha256``.
    """
    import numpy as np

    digest = hashlib.sha256()
    X = np.ascontiguousarray(data.X)
    digest.update(f"{X.dtype.str}{X.shape}".encode())
    digest.update(X.tobytes())
    for name in ("Y", "Y_train", "Y_val", "Y_test"):
        if name in data:
            Y = data[name].tocsr()
            digest.update(f"{name}{Y.shape}".encode())
            for part in (Y.indptr, Y.indices, Y.data):
                digest.update(np.ascontiguousarray(part).tobytes())
    n_users = (data.Y if "Y" in data else data.Y_train).shape[1]
    return {"name": data.get("name", "data"), "path": data.get("path"),
            "modalities": list(data.get("modality_names", [])),
            "n_items": int(X.shape[0]), "n_users": int(n_users),
            "sha256": digest.hexdigest()}
