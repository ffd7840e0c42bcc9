"""How close imputed item features are to the true ones."""

import numpy as np


def centred_cosine(X_imputed, X_true, centre):
    """Mean row-wise cosine between imputed and true features after subtracting ``centre``.

    With ``centre`` the mean of the observed rows, mean imputation scores exactly 0 and a
    perfect imputation scores 1, so the figure measures what an imputer adds over the mean.

    Parameters
    ----------
    X_imputed, X_true : ndarray of shape (n_rows, n_features)
        Imputed and true values of the same rows.
    centre : ndarray of shape (n_features,)
        Subtracted from both before the cosine.

    Returns
    -------
    score : float
        The mean cosine over rows (a row with zero norm counts as 0).
    """
    a = np.asarray(X_imputed, dtype=np.float64) - centre
    b = np.asarray(X_true, dtype=np.float64) - centre
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cos = np.divide((a * b).sum(axis=1), norms, out=np.zeros(len(a)), where=norms > 0)
    return float(cos.mean()) if len(cos) else float("nan")
