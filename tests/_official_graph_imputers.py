"""The FeatProp authors' graph imputers written out densely: the reference of the tests.

A transcription of the rules as ``shared/reference/graph_imputers.md`` describes them (from
sisinflab/Graph-Missing-Modalities ``impute.py`` and danielemalitesta/Graph-Missing-Modalities-TKDE
``feature_homophily.py``), in plain numpy on dense ``n_items x n_items`` arrays, one row or
one edge at a time where the official code loops. It is for small graphs only.

Two deliberate, documented departures, both about ties, whose official order is unspecified:

* the top-k of a row of the co-count matrix takes equal counts in ascending item order (the
  official ``torch.topk`` order is unspecified and differs between CPU and GPU);
* the column top-k of ``T`` treats entries within ``TIE_TOL`` of the cut value as equal and
  keeps the smaller row indices (the official ``argsort`` is numpy's unstable sort).

Entry masks generalise the official row masks: each column resets its own observed entries.
"""

import numpy as np
import scipy.linalg
import scipy.sparse as sp

TIE_TOL = 1e-9


def dense_interactions(Y):
    Y = Y.toarray() if sp.issparse(Y) else np.asarray(Y)
    return (Y != 0).astype(np.float64)


def official_graph(Y, top_k):
    """``get_item_item``: C = R^T R dense, then the ``top_k`` columns of every row, weight 1."""
    R = dense_interactions(Y)  # items x users
    C = R @ R.T
    n = C.shape[0]
    A = np.zeros((n, n))
    for i in range(n):
        order = sorted(range(n), key=lambda j: (-C[i, j], j))
        A[i, order[:top_k]] = 1.0
    return A


def _tilde(X, missing):
    return np.where(missing, 0.0, np.nan_to_num(X))


def official_neigh_mean(A, X, missing):
    """``neigh_mean``: each missing row is the mean of ``x~`` over its listed columns."""
    Xt = _tilde(X, missing)
    out = Xt.copy()
    for i in np.flatnonzero(missing.any(axis=1)):
        first_hop = np.flatnonzero(A[i])
        mean = Xt[first_hop].mean(axis=0)
        out[i, missing[i]] = mean[missing[i]]
    return out


def official_multihop(A, X, missing, n_layers):
    """``feat_prop``: diagonal set to 0, D^-1/2 A D^-1/2 with row degrees, reset layers."""
    Ad = A.copy()
    np.fill_diagonal(Ad, 0.0)
    deg = Ad.sum(axis=1)
    with np.errstate(divide="ignore"):
        inv = deg ** -0.5
    inv[np.isinf(inv)] = 0.0
    P = inv[:, None] * Ad * inv[None, :]
    Xt = _tilde(X, missing)
    Z = Xt.copy()
    for _ in range(n_layers):
        Z = P @ Z
        Z = np.where(missing, Z, Xt)
    return Z


def official_transition(A):
    """``A~ = A + I`` and the dense diagonal filled with row 0's ``1/sqrt`` degree."""
    n = A.shape[0]
    At = A + np.eye(n)
    D_tilde = 1.0 / np.sqrt(At.sum(axis=1))
    D_ = np.zeros((n, n))
    np.fill_diagonal(D_, D_tilde[0])
    return D_ @ At @ D_


def diffusion_kernel(H, kernel, alpha=0.1, t=5.0):
    """The dense operator: ``alpha (I - (1 - alpha) H)^-1`` or ``expm(-t (I - H))``."""
    n = H.shape[0]
    if kernel == "ppr":
        return alpha * np.linalg.inv(np.eye(n) - (1 - alpha) * H)
    return scipy.linalg.expm(-t * (np.eye(n) - H))


def column_top_k(T, k):
    """Keep the ``k`` largest entries of each column (ties within TIE_TOL to the smaller row
    index), zero the others, then divide each column by its sum (a zero sum left as 1)."""
    n = T.shape[0]
    S = np.zeros_like(T)
    for j in range(n):
        col = T[:, j]
        kth = np.sort(col)[::-1][k - 1]
        definite = np.flatnonzero(col > kth + TIE_TOL)
        ties = np.flatnonzero(np.abs(col - kth) <= TIE_TOL)
        keep = list(definite) + list(ties[:k - definite.size])
        S[keep, j] = col[keep]
    norm = S.sum(axis=0)
    norm[norm <= 0] = 1.0
    return S / norm


def official_operator(A, kernel, top_k, alpha=0.1, t=5.0):
    return column_top_k(diffusion_kernel(official_transition(A), kernel, alpha, t), top_k)


def official_diffusion(A, X, missing, n_layers, kernel, top_k, alpha=0.1, t=5.0):
    """``pers_page_rank`` / ``heat``: ``Z <- T Z`` over all rows, observed entries reset."""
    T = official_operator(A, kernel, top_k, alpha, t)
    Xt = _tilde(X, missing)
    Z = Xt.copy()
    for _ in range(n_layers):
        Z = T @ Z
        Z = np.where(missing, Z, Xt)
    return Z


def official_homophily(X, A):
    """``feature_homophily.py``: the pooled endpoint mean, then a Pearson-type correlation of
    the two ends of every stored pair (self pairs included), one edge at a time."""
    rows, cols = np.nonzero(A)
    avg = 0.0
    for i, j in zip(rows, cols):
        avg = avg + (X[i] + X[j])
    avg = avg / (2 * len(rows))
    num = den_left = den_right = 0.0
    for i, j in zip(rows, cols):
        num += np.dot(X[i] - avg, X[j] - avg)
        den_left += np.dot(X[i] - avg, X[i] - avg)
        den_right += np.dot(X[j] - avg, X[j] - avg)
    return num / np.sqrt(den_left * den_right)
