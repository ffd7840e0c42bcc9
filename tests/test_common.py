"""scikit-learn's common estimator checks over every skmm estimator."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skmm import BaselineImputer, FeatPropImputer, VBPRRecommender

ESTIMATORS = [
    FeatPropImputer(device="cpu"),
    BaselineImputer(strategy="mean"),
    BaselineImputer(strategy="zeros"),
    BaselineImputer(strategy="random", random_state=0),
    VBPRRecommender(max_epochs=2, batch_size=64, device="cpu", random_state=0),
]


# y is an (n_items, n_users) interaction matrix. Estimator tags declare it multi-output and
# non-negative, so most checks pass a valid (n, 1) matrix; these checks pass a 1-d label vector
# directly, which skmm refuses instead of guessing it is one user's interactions (a classifier's
# labels reaching the imputer in a Pipeline would otherwise silently become a graph).
_ONE_D_Y = "passes a 1-d label vector as y; skmm requires a 2-d (n_items, n_users) matrix"
FEATPROP_EXPECTED_FAILURES = {
    "check_transformer_data_not_an_array": _ONE_D_Y,
    "check_transformer_general": _ONE_D_Y,
    "check_transformer_preserve_dtypes": _ONE_D_Y,
}


# The checks' y, made multi-output and positive by the tags, is one user who interacted with
# every item. BPR training contrasts each interaction with an item the user has not interacted
# with, so there is nothing to train on and fit raises a clear ValueError ("could not draw
# negatives ...") instead of training on nothing.
_ALL_POSITIVE = "the check's single user interacted with every item: BPR has no negative to draw"
VBPR_EXPECTED_FAILURES = {
    name: _ALL_POSITIVE for name in [
        "check_fit_score_takes_y", "check_estimators_overwrite_params",
        "check_dont_overwrite_parameters", "check_estimators_fit_returns_self",
        "check_readonly_memmap_input", "check_n_features_in_after_fitting",
        "check_positive_only_tag_during_fit", "check_estimators_dtypes", "check_dtype_object",
        "check_pipeline_consistency", "check_estimators_nan_inf", "check_estimators_pickle",
        "check_f_contiguous_array_estimator", "check_methods_sample_order_invariance",
        "check_methods_subset_invariance", "check_fit2d_1sample", "check_fit2d_1feature",
        "check_dict_unchanged", "check_fit_idempotent", "check_fit_check_is_fitted",
        "check_n_features_in", "check_fit2d_predict1d",
    ]
}


def _expected_failures(estimator):
    if isinstance(estimator, FeatPropImputer):
        return FEATPROP_EXPECTED_FAILURES
    if isinstance(estimator, VBPRRecommender):
        return VBPR_EXPECTED_FAILURES
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failures)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
