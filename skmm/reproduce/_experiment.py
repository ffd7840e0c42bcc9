"""How an experiment is declared: its independent fits, their rows, its report."""

from dataclasses import dataclass, field
from numbers import Integral
from typing import Callable


@dataclass(frozen=True)
class Task:
    """One independent fit of an experiment.

    Parameters
    ----------
    args : dict
        Keyword arguments of the experiment's ``run`` function for this fit (JSON-able values).
    rows : tuple of tuple
        The keys of the rows the fit returns: one tuple per row, over the experiment's ``key``
        columns. The runner checks that ``run`` returns exactly these rows, and counts a fit
        as done when all of them are in the CSV.
    """

    args: dict
    rows: tuple


@dataclass(frozen=True)
class Report:
    """How an experiment's rows are summarised, read and plotted.

    Parameters
    ----------
    groups : tuple of str
        The columns of a summary line (mean and std over the other rows, i.e. the seeds).
    reading : tuple of str
        Printed under the table: what is compared, what the ± is, what the data can show.
        ``{seeds}`` is replaced by the seeds present (``"5 seeds, 0-4"``).
    metrics : tuple of str, default=("recall@20", "ndcg@20")
        The averaged columns.
    order : callable, default=None
        A sort key of rows for the table; None keeps the tasks' order.
    plot : callable, default=None
        ``plot(rows) -> matplotlib.figure.Figure``, saved as ``<name>.png``; None for no plot.
    """

    groups: tuple
    reading: tuple
    metrics: tuple = ("recall@20", "ndcg@20")
    order: Callable = None
    plot: Callable = None

    def sorted(self, rows):
        """``rows`` in table order."""
        return sorted(rows, key=self.order) if self.order is not None else list(rows)


@dataclass(frozen=True)
class Experiment:
    """An experiment as the runner sees it: independent fits and how to run one.

    Parameters
    ----------
    name : str
        Names the output files: ``<name>.csv`` (per-seed rows), ``<name>_config.json`` (the
        configuration, checked on resume), ``<name>_summary.csv`` and ``<name>.png``.
    run : callable
        ``run(data, **task.args) -> list of dict``: fits one task and returns its rows, each
        with exactly the ``columns``. It runs in a worker process under ``jobs > 1``, so it
        must pickle (a module-level function, or a :func:`functools.partial` of one).
    tasks : tuple of Task
        The independent fits.
    columns : dict
        CSV column name -> type (``int``, ``float`` or ``str``), in file order.
    key : tuple of str
        The columns that identify a row (e.g. setting, model and seed).
    config : dict
        JSON-able: everything besides the data and the tasks that a row's values depend on
        (model parameters, missing rates, ...). Resuming requires the same configuration.
    report : Report
        The summary table, its reading and the plot.

    Examples
    --------
    A toy experiment whose "fit" squares its seed:

    >>> from skmm.reproduce import Experiment, Report, Task, run_experiments
    >>> def square(data, seed):
    ...     return [{"seed": seed, "value": float(seed) ** 2}]
    >>> toy = Experiment(
    ...     name="toy", run=square,
    ...     tasks=tuple(Task({"seed": s}, rows=((s,),)) for s in range(3)),
    ...     columns={"seed": int, "value": float}, key=("seed",), config={},
    ...     report=Report(groups=(), reading=(), metrics=("value",)))
    >>> run_experiments([toy], data=None, progress=False)["toy"]
    [{'seed': 0, 'value': 0.0}, {'seed': 1, 'value': 1.0}, {'seed': 2, 'value': 4.0}]
    """

    name: str
    run: Callable
    tasks: tuple
    columns: dict
    key: tuple
    config: dict
    report: Report
    _order: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        missing = [k for k in self.key if k not in self.columns]
        if missing:
            raise ValueError(f"experiment {self.name!r}: key columns {missing} are not among "
                             f"its columns {list(self.columns)}.")
        order = {}
        for task in self.tasks:
            if any(len(k) != len(self.key) for k in task.rows):
                raise ValueError(f"experiment {self.name!r}: the task {task.args} declares "
                                 f"rows {task.rows}, each must be a tuple over {self.key}.")
            for row in self.task_keys(task):
                if row in order:
                    raise ValueError(f"experiment {self.name!r}: row {row} is declared by two "
                                     f"tasks.")
                order[row] = len(order)
        object.__setattr__(self, "_order", order)

    def row_key(self, row):
        """The key of ``row``, its values converted to the columns' types."""
        return tuple(self.columns[k](row[k]) for k in self.key)

    def task_keys(self, task):
        """The keys of the rows ``task`` declares, typed as :meth:`row_key` types them."""
        return [self.row_key(dict(zip(self.key, k))) for k in task.rows]

    def typed(self, row):
        """``row`` with exactly the experiment's columns, each of its type."""
        if set(row) != set(self.columns):
            raise ValueError(f"experiment {self.name!r}: a row has the columns {sorted(row)}, "
                             f"expected {list(self.columns)}.")
        return {c: kind(row[c]) for c, kind in self.columns.items()}

    def canonical(self, rows):
        """``rows`` in the tasks' order; rows of no current task (other seeds) last."""
        n = len(self._order)
        ranked = sorted(enumerate(rows),
                        key=lambda ir: (self._order.get(self.row_key(ir[1]), n), ir[0]))
        return [row for _, row in ranked]


def check_seeds(seeds):
    """``seeds`` as a tuple of distinct non-negative ints (an int ``n``: ``0 .. n - 1``)."""
    if isinstance(seeds, Integral) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"seeds must be a positive number of seeds, got {seeds}.")
        return tuple(range(int(seeds)))
    seeds = tuple(seeds)
    if not seeds or not all(isinstance(s, Integral) and not isinstance(s, bool) and
                            0 <= s < 2**31 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a positive int or distinct ints in [0, 2**31), got "
                         f"{seeds!r}.")
    return tuple(int(s) for s in seeds)


def estimator_params(estimator):
    """An estimator's parameters for a configuration file: every one, defaults included (so
    that a changed default is a changed configuration), except ``random_state``, which the
    seed sets."""
    import json

    params = estimator.get_params(deep=False)
    params.pop("random_state", None)
    return json.loads(json.dumps(params, default=repr))
