"""Rerun the papers' experiments: ``python -m skmm reproduce featprop|milk|imputers|all``.

Each experiment writes a CSV of per-seed results (a row as each fit ends), its configuration,
a summary CSV and a PNG plot into ``out``, and the command prints a table of means and
standard deviations over seeds.

How it is organised, one concept per module:

* ``_experiment``: an experiment is data (:class:`Experiment`): its independent fits
  (:class:`Task`), a function that runs one and returns its rows, its CSV columns, its
  configuration and its :class:`Report` (summary table, reading, plot);
* ``_runner``: :func:`run_experiments` runs any experiments' fits under one progress bar,
  in parallel processes if asked, writes and resumes their CSVs, and stops cleanly on Ctrl-C;
* ``_featprop`` and ``_milk``: the two papers' experiments, with the registries of what they
  compare (:data:`IMPUTERS`, :data:`DOWNSTREAM_MODELS`, :data:`MILK_MODELS`);
  ``_robustness``: MILK's robustness curve as the share of new items missing a modality grows;
  ``_imputers``: every graph imputer x similarity against the mean, imputation quality per
  modality under both missing protocols (:data:`IMPUTATION_METHODS`), and the graphs' feature
  homophily;
* ``_report``: tables, readings and plots; ``_files``: the results folder; ``_data``: the data.

A new experiment is a function that returns an :class:`Experiment` (or a tuple of them, run
together); nothing in the runner changes. Importing this package imports neither torch nor
matplotlib: the experiments import what they need when a fit runs.
"""

from ._data import data_signature, default_data, load_data
from ._experiment import Experiment, Report, Task, check_seeds
from ._featprop import (
    DOWNSTREAM_MODELS,
    FEATPROP_RATES,
    FEATPROP_STRATEGIES,
    IMPUTERS,
    QUICK_RATES,
    DownstreamModel,
    featprop_experiment,
    reproduce_featprop,
)
from ._files import RefusedError
from ._imputers import (
    CV_GRID,
    DEFAULT_IMPUTERS,
    IMPUTATION_METHODS,
    ImputationMethod,
    imputers_experiment,
    reproduce_imputers,
)
from ._milk import MILK_MODELS, MILK_SCHEDULE, MILK_SETTINGS, milk_experiment, reproduce_milk
from ._robustness import (
    ROBUSTNESS_MODELS,
    ROBUSTNESS_SHARES,
    reproduce_robustness,
    robustness_experiment,
)
from ._report import (
    REPRODUCTION_PAGE,
    check_matplotlib,
    format_report,
    format_table,
    summarize,
    write_summary,
)
from ._runner import Interrupted, run_experiments

#: The experiments of ``python -m skmm reproduce``, by name: a function of the data and the
#: command's options that returns the :class:`Experiment` (or a tuple of them).
EXPERIMENTS = {"featprop": featprop_experiment, "milk": milk_experiment,
               "milk-robustness": robustness_experiment, "imputers": imputers_experiment}

#: The names each experiment accepts for a command-line list option (checked before any data
#: is read; the union is what the parser accepts).
OPTION_CHOICES = {"featprop": {"imputers": tuple(IMPUTERS)},
                  "imputers": {"imputers": tuple(IMPUTATION_METHODS)}}

__all__ = [
    "CV_GRID", "DEFAULT_IMPUTERS", "DOWNSTREAM_MODELS", "EXPERIMENTS", "FEATPROP_RATES",
    "FEATPROP_STRATEGIES",
    "IMPUTATION_METHODS", "IMPUTERS", "MILK_MODELS", "MILK_SCHEDULE", "MILK_SETTINGS",
    "OPTION_CHOICES", "QUICK_RATES", "REPRODUCTION_PAGE", "ROBUSTNESS_MODELS",
    "ROBUSTNESS_SHARES",
    "DownstreamModel", "Experiment", "ImputationMethod", "Interrupted", "RefusedError",
    "Report", "Task",
    "check_matplotlib", "check_seeds", "data_signature", "default_data", "featprop_experiment",
    "format_report", "format_table", "imputers_experiment", "load_data", "milk_experiment",
    "reproduce_featprop", "reproduce_imputers", "reproduce_milk", "reproduce_robustness",
    "robustness_experiment", "run_experiments", "summarize", "write_summary",
]
