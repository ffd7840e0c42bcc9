"""``python -m skmm``: options, exit statuses, one-line errors, interrupts."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import skmm.reproduce as rp
from skmm.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a command gets as far as loading data."""
    def load_data(*args, **kwargs):
        raise AssertionError("the command started working")

    monkeypatch.setattr(rp, "load_data", load_data)


def run(argv, capsys):
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def mmrec(tmp_path):
    """A tiny MMRec folder: 6 items, 4 users, a 3-d modality ``text``."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    lines = ["userID\titemID\trating\tx_label"]
    lines += [f"{u}\t{i}\t1\t{(u + i) % 3}" for u in range(4) for i in range(6) if (u + i) % 2]
    (folder / "tiny.inter").write_text("\n".join(lines) + "\n")
    np.save(folder / "text.npy", np.ones((6, 3), np.float32))
    return folder


@pytest.mark.parametrize("argv, option", [
    (["--seeds", "0"], "--seeds"),
    (["--seeds", "-2"], "--seeds"),
    (["--seeds", "two"], "--seeds"),
    (["--threads", "0"], "--threads"),
    (["--threads", "-1"], "--threads"),
    (["--jobs", "0"], "--jobs"),
    (["--jobs", "-4"], "--jobs"),
    (["--first-seed", "-1"], "--first-seed"),
    (["--rates", "1.0"], "--rates"),
    (["--rates", "0.5", "nan"], "--rates"),
    (["--model", "nope"], "--model"),
    (["--imputers", "knn"], "--imputers"),
    (["--data", "/no/such/folder"], "--data"),
    (["--resume", "--overwrite"], "--overwrite"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_option_is_a_usage_error(argv, option, capsys, no_work):
    status, out, err = run(["reproduce", "featprop", *argv], capsys)
    assert status == 2
    assert err.startswith("usage:") and f"argument {option}" in err
    assert out == ""


@pytest.mark.parametrize("argv, message", [
    (["featprop", "--modalities", "text"], "--modalities needs --data"),
    (["milk", "--rates", "0.5"], "--rates applies to featprop and imputers only"),
    (["milk", "--model", "vbpr"], "--model applies to featprop only"),
    (["featprop", "--seeds", "2", "--first-seed", str(2**31 - 1001)], "largest seed"),
])
def test_inconsistent_options_are_usage_errors(argv, message, capsys, no_work):
    status, out, err = run(["reproduce", *argv], capsys)
    assert status == 2
    assert err.startswith("skmm: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_out_naming_a_file_is_refused_before_running(tmp_path, capsys, no_work):
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    status, _, err = run(["reproduce", "all", "--quick", "--out", str(target)], capsys)
    assert status == 2
    assert err.startswith("skmm: error: --out") and "existing file" in err
    assert target.read_text() == "keep me"


def test_unknown_modality_names_the_files_there(mmrec, capsys, no_work):
    status, _, err = run(["reproduce", "featprop", "--data", str(mmrec), "--modalities",
                          "text", "image"], capsys)
    assert status == 2
    assert "no image.npy" in err and "its feature files: text" in err
    assert err.count("\n") == 1


def test_a_folder_that_is_not_a_dataset_fails_in_one_line(tmp_path, capsys):
    status, _, err = run(["reproduce", "featprop", "--data", str(tmp_path), "--out",
                          str(tmp_path / "out")], capsys)
    assert status == 1
    assert err == f"skmm: error: no .inter file in {tmp_path}.\n"


@pytest.mark.parametrize("debug", [False, True])
def test_unexpected_error_is_one_line_unless_debug(debug, tmp_path, capsys, monkeypatch):
    def load_data(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(rp, "load_data", load_data)
    argv = ["reproduce", "milk", "--out", str(tmp_path)] + ["--debug"] * debug
    status, _, err = run(argv, capsys)
    assert status == 1
    assert err.endswith("skmm: error: RuntimeError: boom second line\n")
    assert ("Traceback" in err) == debug


def test_missing_matplotlib_is_said_before_any_work(tmp_path, capsys, monkeypatch, no_work):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    status, out, err = run(["reproduce", "all", "--quick", "--out", str(tmp_path)], capsys)
    assert status == 1
    assert err.startswith("skmm: error: the plots need matplotlib") and "--no-plot" in err
    assert err.count("\n") == 1 and out == "" and list(tmp_path.iterdir()) == []


def test_no_plot_runs_without_matplotlib(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    status, out, _ = run(["reproduce", "featprop", "--quick", "--seeds", "1", "--rates", "0.5",
                          "--imputers", "mean", "--no-plot", "--out", str(tmp_path)], capsys)
    assert status == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "featprop.csv", "featprop_config.json", "featprop_summary.csv"]


def test_interrupt_during_setup_exits_130(capsys, monkeypatch):
    def load_data(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(rp, "load_data", load_data)
    status, _, err = run(["reproduce", "milk", "--no-plot"], capsys)
    assert status == 130 and err == "interrupted\n"


def test_existing_results_need_resume_or_overwrite(tmp_path, capsys):
    argv = ["reproduce", "featprop", "--quick", "--seeds", "1", "--rates", "0.5",
            "--imputers", "zeros", "mean", "--out", str(tmp_path)]
    assert run(argv, capsys)[0] == 0
    before = (tmp_path / "featprop.csv").read_bytes()
    status, _, err = run(argv, capsys)
    assert status == 2
    assert "--resume" in err and "--overwrite" in err and err.count("\n") == 1
    assert (tmp_path / "featprop.csv").read_bytes() == before
    status, out, _ = run(argv + ["--resume"], capsys)
    assert status == 0 and "(2 already done): 0 fits to run" in out
    # Resuming with other settings is refused, naming the difference.
    status, _, err = run(argv + ["--resume", "--rates", "0.3"], capsys)
    assert status == 2 and "rates: [0.5] then, [0.3] now" in err
    status, out, _ = run(argv + ["--overwrite", "--first-seed", "4"], capsys)
    assert status == 0 and "featprop 2 fits: 2 fits to run" in out
    assert {r["seed"] for r in csv.DictReader(open(tmp_path / "featprop.csv"))} == {"4"}


def test_command_line_all(tmp_path, capsys):
    status, out, _ = run(["reproduce", "all", "--quick", "--seeds", "1", "--rates", "0.5",
                          "--threads", "1", "--out", str(tmp_path)], capsys)
    assert status == 0
    assert "featprop 4 fits; milk 6 fits: 10 fits to run, one at a time." in out
    assert "featprop: mean and std over 1 seed (0)" in out and "MTMT" in out
    assert out.count(rp.REPRODUCTION_PAGE) == 2
    assert {p.name for p in tmp_path.iterdir()} == {
        f"{name}{suffix}" for name in ("featprop", "milk")
        for suffix in (".csv", ".png", "_summary.csv", "_config.json")}


def test_help_imports_nothing_heavy():
    """The command line's own modules import neither torch, scikit-learn nor matplotlib
    (skmm/__init__ is bypassed: what it imports is not this test's subject)."""
    code = f"""
import sys, types
for name in ("torch", "sklearn", "matplotlib", "scipy", "skorch"):
    sys.modules[name] = None  # importing any of them fails
package = types.ModuleType("skmm")
package.__path__ = [{str(ROOT / "skmm")!r}]
sys.modules["skmm"] = package
from skmm.__main__ import main
sys.exit(main(["reproduce", "--help"]))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--resume" in result.stdout and "--jobs" in result.stdout


def _skmm(*argv, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "skmm", *argv], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_exit_statuses_of_a_real_process(tmp_path):
    usage = _skmm("reproduce", "featprop", "--seeds", "0")
    file = tmp_path / "file"
    file.write_text("")
    refused = _skmm("reproduce", "featprop", "--out", str(file))
    for proc, status in ((usage, 2), (refused, 2)):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == status, err
        assert "Traceback" not in err


def test_ctrl_c_stops_a_parallel_run_that_resumes(tmp_path):
    """SIGINT to the whole process group (what Ctrl-C does), workers included."""
    out = tmp_path / "out"
    argv = ["reproduce", "featprop", "--quick", "--rates", "0.1", "0.5", "0.9", "--seeds", "2",
            "--imputers", "zeros", "mean", "--no-plot", "--out", str(out)]
    proc = _skmm(*argv, "--jobs", "2", start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "featprop.csv").exists() and \
                len((out / "featprop.csv").read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    rows = list(csv.DictReader(open(out / "featprop.csv")))
    assert f"interrupted: {len(rows)} of 12 fits done; rerun with --resume" in err
    assert 2 <= len(rows) < 12
    assert all(r["ndcg@20"] and r["seconds"] for r in rows)
    resumed = _skmm(*argv, "--resume")
    stdout, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert f"({len(rows)} already done): {12 - len(rows)} fits to run" in stdout
    assert len(list(csv.DictReader(open(out / "featprop.csv")))) == 12
