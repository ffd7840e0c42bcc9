"""An experiment's files in the results folder: rows CSV, configuration, summary, plot."""

import csv
import io
import json
import os
from pathlib import Path

from ._data import data_signature
from ._report import pyplot, write_summary

# Recorded in the configuration file but not compared on resume.
_INFORMATIONAL = {("data", "path")}


class RefusedError(ValueError):
    """Results in the output folder that a run must not touch, or cannot resume."""


def check_out_dir(out):
    """Refuse an output folder that is an existing file."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RefusedError(f"the output folder {str(out)!r} is an existing file, not a folder.")


class ResultFiles:
    """The files of one experiment in ``out``.

    * ``<name>.csv``: one line per finished row, appended and flushed as each fit ends;
    * ``<name>_config.json``: the configuration the rows were made with;
    * ``<name>_summary.csv`` and ``<name>.png``: made from the full CSV at the end.
    """

    def __init__(self, out, experiment, data):
        from .. import __version__

        self.dir = Path(out)
        self.experiment = experiment
        name = experiment.name
        self.csv = self.dir / f"{name}.csv"
        self.config_file = self.dir / f"{name}_config.json"
        self.summary = self.dir / f"{name}_summary.csv"
        self.plot = self.dir / f"{name}.png"
        config = {"experiment": name, "skmm_version": __version__,
                  "data": None if data is None else data_signature(data),
                  **experiment.config}
        # The form it takes once written (tuples become lists).
        self.config = json.loads(json.dumps(config))
        self._rows = []
        self._fh = None

    @property
    def paths(self):
        return self.csv, self.config_file, self.summary, self.plot

    def check(self, if_exists):
        """Refuse, before any fit, what ``if_exists`` does not allow."""
        existing = [p for p in self.paths if p.exists()]
        for p in existing:
            if not p.is_file():
                raise RefusedError(f"{p} is in the way of the results: it is not a file.")
        if existing and if_exists == "error":
            raise RefusedError(f"{existing[0]} exists, from an earlier run: pass --resume to "
                               f"continue that run or --overwrite to replace it, or choose "
                               f"another output folder.")
        if if_exists == "resume" and self.csv.exists():
            if not self.config_file.exists():
                raise RefusedError(f"{self.csv} has no {self.config_file.name} beside it, so "
                                   f"the configuration of its rows is unknown: pass "
                                   f"--overwrite to replace them.")
            try:
                stored = json.loads(self.config_file.read_text())
            except ValueError as exc:
                raise RefusedError(f"{self.config_file} is not valid JSON ({exc}).") from None
            if not isinstance(stored, dict):
                raise RefusedError(f"{self.config_file} is not a configuration (a JSON object).")
            diffs = _differences(stored, self.config)
            if diffs:
                raise RefusedError(f"{self.csv} holds results of another configuration "
                                   f"({'; '.join(diffs)}): pass --overwrite to replace them, "
                                   f"or choose another output folder.")
            self._rows = self._read()

    def open(self, if_exists):
        """Write the configuration and the CSV's kept rows; return those rows.

        On resume, the rows of a fit only partly written are dropped (its fit reruns) and the
        stale summary and plot are removed until the end makes new ones."""
        self.dir.mkdir(parents=True, exist_ok=True)
        rows = self._complete(self._rows) if if_exists == "resume" else []
        for p in (self.summary, self.plot):
            p.unlink(missing_ok=True)
        _atomic_write(self.config_file, json.dumps(self.config, indent=2) + "\n")
        _atomic_write(self.csv, self._csv_text(rows, header=True))
        self._fh = open(self.csv, "a", newline="")
        return rows

    def append(self, rows):
        """Append one fit's rows in a single write, flushed."""
        self._fh.write(self._csv_text(rows))
        self._fh.flush()

    def close(self):
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def finish(self, rows, plots):
        """Rewrite the CSV in the tasks' order; make the summary and the plot from it."""
        self.close()
        _atomic_write(self.csv, self._csv_text(rows, header=True))
        if not rows:
            return
        report = self.experiment.report
        write_summary(report.sorted(rows), report.groups, self.summary, report.metrics)
        if plots and report.plot is not None:
            fig = report.plot(rows)
            fig.savefig(self.plot, dpi=120)
            pyplot().close(fig)

    def _csv_text(self, rows, header=False):
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(self.experiment.columns))
        if header:
            writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()

    def _read(self):
        text = self.csv.read_text()
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines.pop()  # the torn last line of a killed run
        if not lines:
            return []
        reader = csv.DictReader(lines)
        columns = list(self.experiment.columns)
        if reader.fieldnames != columns:
            raise RefusedError(f"{self.csv} has the columns {reader.fieldnames}, expected "
                               f"{columns}: not {self.experiment.name} results.")
        rows, seen = [], set()
        for lineno, row in enumerate(reader, start=2):
            try:
                row = self.experiment.typed(row)
            except (TypeError, ValueError) as exc:
                raise RefusedError(f"{self.csv}, line {lineno}: {exc}") from None
            key = self.experiment.row_key(row)
            if key in seen:
                raise RefusedError(f"{self.csv}, line {lineno}: a second row for {key}.")
            seen.add(key)
            rows.append(row)
        return rows

    def _complete(self, rows):
        """``rows`` less those of tasks that have some but not all of their rows."""
        exp = self.experiment
        have = {exp.row_key(r) for r in rows}
        partial = set()
        for task in exp.tasks:
            keys = set(exp.task_keys(task))
            if not keys <= have:
                partial |= keys & have
        return [r for r in rows if exp.row_key(r) not in partial]


def _differences(stored, now, prefix=()):
    diffs = []
    for k in sorted(set(stored) | set(now), key=str):
        path = prefix + (k,)
        if path in _INFORMATIONAL:
            continue
        a, b = stored.get(k, "(absent)"), now.get(k, "(absent)")
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += _differences(a, b, path)
        elif a != b:
            diffs.append(f"{'.'.join(map(str, path))}: {_short(a)} then, {_short(b)} now")
    return diffs


def _short(value, width=60):
    text = json.dumps(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def _atomic_write(path, text):
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        fh.write(text)
    os.replace(tmp, path)
