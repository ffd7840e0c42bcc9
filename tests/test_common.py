"""scikit-learn's common estimator checks over every skmm estimator, discovered, not listed.

Every public estimator class of the package runs the checks with its default parameters,
made small and fast where the class has them (``FAST``). The failures that remain are
expected, each with its reason, in one table (``EXPECTED_FAILURES``), as imbalanced-learn keeps
them.
"""

import importlib
import inspect
import pkgutil

import pytest
from sklearn.base import BaseEstimator
from skorch import NeuralNet
from sklearn.utils.estimator_checks import parametrize_with_checks

import skmm

# Parameters that make an estimator quick on the checks' tiny data (applied where they exist).
FAST = {"max_epochs": 2, "batch_size": 64, "device": "cpu", "random_state": 0,
        "embedding_dim": 4, "n_factors": 4, "n_content_factors": 4}
# Extra instances for behaviour that a parameter switches.
VARIANTS = {"BaselineImputer": [{"strategy": "constant"}, {"strategy": "random"}],
            "FREEDOMRecommender": [{"zero_rows": "rank_first"}]}

# y is an (n_items, n_users) interaction matrix. Estimator tags declare it multi-output and
# non-negative, so most checks pass a valid (n, 1) matrix; these checks pass a 1-d label vector
# directly, which skmm refuses instead of guessing it is one user's interactions (a classifier's
# labels reaching an imputer in a Pipeline would otherwise silently become a graph).
_ONE_D_Y = "passes a 1-d label vector as y; skmm requires a 2-d (n_items, n_users) matrix"
_WARM = ("predicts on rows that were not in fit; a warm-start model scores its fitted items "
         "only and refuses rows it cannot identify (tested in test_recommenders.py)")
EXPECTED_FAILURES = {
    "VBPRRecommender": {"check_fit_idempotent": _WARM},
    "FREEDOMRecommender": {
        "check_fit_idempotent": _WARM,
        "check_estimators_dtypes": "casts random X to integers, which leaves all-zero rows; "
                                   "FREEDOM refuses them by default (zero_rows='raise': their "
                                   "cosine similarity is undefined)",
    },
    "FeatPropImputer": {
        "check_transformer_data_not_an_array": _ONE_D_Y,
        "check_transformer_general": _ONE_D_Y,
        "check_transformer_preserve_dtypes": _ONE_D_Y,
    },
    "GraphImputer": {
        "check_transformer_data_not_an_array": _ONE_D_Y,
        "check_transformer_general": _ONE_D_Y,
        "check_transformer_preserve_dtypes": _ONE_D_Y,
    },
    "GraphImputerCV": {
        "check_transformer_data_not_an_array": _ONE_D_Y,
        "check_transformer_general": _ONE_D_Y,
        "check_transformer_preserve_dtypes": _ONE_D_Y,
    },
}


def all_estimators():
    """Every public estimator class defined in skmm, by name (skmm's skorch nets are
    training machinery inside the recommenders, not estimators of their own)."""
    found = {}
    for info in pkgutil.walk_packages(skmm.__path__, "skmm."):
        if any(part.startswith("_") and part != "__main__" for part in info.name.split(".")[1:-1]):
            continue
        module = importlib.import_module(info.name)
        for name, obj in inspect.getmembers(module, inspect.isclass):
            if (issubclass(obj, BaseEstimator) and not issubclass(obj, NeuralNet)
                    and obj.__module__.startswith("skmm.")
                    and not name.startswith("_") and not _is_base(name)):
                found[name] = obj
    return dict(sorted(found.items()))


def _is_base(name):
    return name.startswith("Base") and name[4:5].isupper()  # BaseRecommender, not Baseline


def _instances():
    for name, cls in all_estimators().items():
        params = cls().get_params()
        fast = {k: v for k, v in FAST.items() if k in params}
        for variant in [{}] + VARIANTS.get(name, []):
            yield cls(**{**fast, **variant})


def _expected_failures(estimator):
    failures = dict(EXPECTED_FAILURES.get(type(estimator).__name__, {}))
    if getattr(estimator, "zero_rows", None) == "rank_first":  # all-zero rows are accepted
        failures.pop("check_estimators_dtypes", None)
    return failures


def test_discovery_finds_every_exported_estimator():
    exported = {name for name in skmm.__all__
                if inspect.isclass(getattr(skmm, name))
                and issubclass(getattr(skmm, name), BaseEstimator)}
    assert exported <= set(all_estimators())


@pytest.mark.filterwarnings("ignore:modalities=None:UserWarning")
@pytest.mark.filterwarnings("ignore:no negative can be drawn:UserWarning")
@parametrize_with_checks(list(_instances()), expected_failed_checks=_expected_failures)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
