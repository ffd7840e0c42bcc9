"""The runner of the experiments: independent fits, streamed to CSV, resumable, parallel.

An experiment is declared as data (:class:`Experiment`): its independent fits
(:class:`Task`), one function that runs a fit and returns its rows, the CSV columns and the
configuration that makes rows comparable. :func:`run_experiments` runs the fits of several
experiments under one progress bar, writes each finished fit's rows at once, resumes from what
is written, runs fits in parallel processes, and stops cleanly on Ctrl-C.
"""

import time
import warnings
from dataclasses import dataclass
from numbers import Integral

from ._control import SigintGuard, limit_threads
from ._files import ResultFiles, check_out_dir
from ._progress import Progress
from ._report import check_matplotlib


class Interrupted(KeyboardInterrupt):
    """Raised by :func:`run_experiments` on Ctrl-C, after every complete row was written."""

    def __init__(self, done, total, saved):
        self.done, self.total, self.saved = done, total, saved
        hint = "rerun with --resume" if saved else "nothing was saved (no output folder)"
        super().__init__(f"interrupted: {done} of {total} fits done; {hint}")


def run_experiments(experiments, data, *, out=None, if_exists="error", jobs=1, threads=None,
                    progress=True, plots=True, echo=print):
    """Run the fits of ``experiments`` and return their rows.

    Each finished fit's rows are appended to ``<out>/<name>.csv`` and flushed at once, so a
    killed run keeps every fit it finished. At the end every CSV is rewritten in the tasks'
    order, and the summary CSV and the plot are made from it. On Ctrl-C the run stops,
    keeping only complete rows (never one of the interrupted fits, even when the fit caught
    the interrupt and returned, as skorch does), and raises :class:`Interrupted`.

    Parameters
    ----------
    experiments : list of Experiment
        Run under one progress bar, their fits interleaved so that its ETA sees each kind of
        fit early.
    data : object
        Passed to every ``run``.
    out : str or path, default=None
        The results folder; None writes nothing and keeps the rows in memory.
    if_exists : {"error", "resume", "overwrite"}, default="error"
        What to do with results already in ``out``: refuse (:class:`RefusedError`, before
        any fit), resume (skip the fits whose rows are written, after checking the stored
        configuration is this one), or replace them.
    jobs : int, default=1
        Fits run at the same time, in worker processes when more than 1. The rows do not
        depend on it (given ``threads``).
    threads : int, default=None
        CPU threads of each fit (torch and the BLAS libraries); None keeps the process's
        setting with ``jobs=1`` and is 1 with ``jobs > 1``.
    progress : bool, default=True
        Show the overall progress bar (on stderr) and the count of fits.
    plots : bool, default=True
        Write each experiment's plot (needs matplotlib, checked before any fit).
    echo : callable, default=print
        Receives the message that counts the fits.

    Returns
    -------
    rows : dict
        Experiment name -> its rows (with ``out``: every row of its CSV), in the tasks' order.
    """
    if if_exists not in ("error", "resume", "overwrite"):
        raise ValueError(f"if_exists must be 'error', 'resume' or 'overwrite', got "
                         f"{if_exists!r}.")
    for name, value in (("jobs", jobs), ("threads", threads)):
        if value is not None and (not isinstance(value, Integral) or value < 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    names = [e.name for e in experiments]
    if len(set(names)) != len(names):
        raise ValueError(f"experiment names must differ, got {names}.")
    if threads is None and jobs > 1:
        threads = 1
    files = {}
    if out is not None:
        check_out_dir(out)
        if plots and any(e.report.plot is not None for e in experiments):
            check_matplotlib()
        files = {e.name: ResultFiles(out, e, data) for e in experiments}
        for f in files.values():  # every refusal before anything is written
            f.check(if_exists)
    done = {e.name: [] for e in experiments}
    try:
        for e in experiments:
            if e.name in files:
                done[e.name] = files[e.name].open(if_exists)
        todo = {e.name: _todo(e, done[e.name]) for e in experiments}
        total = sum(len(e.tasks) for e in experiments)
        n_todo = sum(map(len, todo.values()))
        if progress:
            echo(_plan(experiments, todo, jobs))
        schedule = _interleave([[(e, t) for t in todo[e.name]] for e in experiments])
        state = _Run(done, {e.name: 0 for e in experiments}, files)
        try:
            with Progress({n: len(t) for n, t in todo.items()}, progress) as bar:
                state.bar = bar
                if jobs == 1:
                    _run_sequential(schedule, data, threads, state)
                else:
                    _run_parallel(schedule, data, threads, jobs, state)
        except KeyboardInterrupt:
            finished = sum(state.finished.values())
            raise Interrupted(total - n_todo + finished, total, bool(files)) from None
    finally:
        for f in files.values():
            f.close()
    result = {}
    for e in experiments:
        rows = e.canonical(done[e.name])
        if e.name in files:
            files[e.name].finish(rows, plots)
        result[e.name] = rows
    return result


def _todo(experiment, rows):
    have = {experiment.row_key(r) for r in rows}
    return [t for t in experiment.tasks
            if not all(k in have for k in experiment.task_keys(t))]


def _plan(experiments, todo, jobs):
    parts = []
    for e in experiments:
        n, left = len(e.tasks), len(todo[e.name])
        parts.append(f"{e.name} {n} fits" + (f" ({n - left} already done)" if left < n else ""))
    n_todo = sum(map(len, todo.values()))
    how = f"in {jobs} parallel jobs" if jobs > 1 else "one at a time"
    return f"{'; '.join(parts)}: {n_todo} fit{'s' * (n_todo != 1)} to run, {how}."


def _interleave(lists):
    """Merge the lists so that each advances in proportion to its length."""
    ranked = [((i + 0.5) / len(items), k, item) for k, items in enumerate(lists)
              for i, item in enumerate(items)]
    return [item for *_, item in sorted(ranked, key=lambda r: r[:2])]


@dataclass
class _Run:
    done: dict
    finished: dict
    files: dict
    bar: object = None

    def record(self, experiment, task, rows, timing):
        """Check and keep one finished fit's rows (written and flushed when saving)."""
        rows = [experiment.typed(r) for r in rows]
        got = sorted(experiment.row_key(r) for r in rows)
        expected = sorted(experiment.task_keys(task))
        if got != expected:
            raise RuntimeError(f"experiment {experiment.name!r}: the task {task.args} returned "
                               f"the rows {got}, but declares {expected}.")
        if experiment.name in self.files:
            self.files[experiment.name].append(rows)
        self.done[experiment.name].extend(rows)
        self.finished[experiment.name] += 1
        self.bar.update(experiment.name, *timing)


def _run_sequential(schedule, data, threads, state):
    with SigintGuard() as guard:
        for experiment, task in schedule:
            rows, timing = _run_one(experiment.run, data, task.args, threads)
            # A fit that caught the interrupt (skorch's does) returned a half-trained model's
            # rows: drop them.
            if guard.count:
                raise KeyboardInterrupt
            with guard.deferred():
                state.record(experiment, task, rows, timing)


def _run_parallel(schedule, data, threads, jobs, state):
    from joblib import Parallel, delayed

    with SigintGuard() as guard:
        results = Parallel(n_jobs=jobs, batch_size=1, return_as="generator_unordered")(
            delayed(_run_in_worker)(i, experiment.run, data, task.args, threads)
            for i, (experiment, task) in enumerate(schedule))
        try:
            for i, rows, timing in results:
                if rows is None:  # the worker was interrupted
                    raise KeyboardInterrupt
                with guard.deferred():
                    state.record(*schedule[i], rows, timing)
        finally:
            # Cancels what is still running (joblib kills the workers) and silences joblib's
            # warning about the results left unread.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                results.close()


def _run_one(run, data, args, threads):
    """Run one fit: its rows and ``(start time, seconds)``."""
    with limit_threads(threads):
        started, tic = time.time(), time.perf_counter()
        rows = run(data, **args)
        return rows, (started, time.perf_counter() - tic)


def _run_in_worker(index, run, data, args, threads):
    """One fit in a worker process: ``(index, rows, timing)``, rows None if interrupted."""
    with SigintGuard() as guard:
        try:
            rows, timing = _run_one(run, data, args, threads)
        except KeyboardInterrupt:
            return index, None, None
    return (index, None, None) if guard.count else (index, rows, timing)
