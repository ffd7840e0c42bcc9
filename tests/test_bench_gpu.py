"""``benchmarks/run_gpu.py`` (``make bench-gpu``): its help, its dry run's steps, its summary
and its output folder, without running a benchmark (a few seconds, no torch import in the
subprocesses)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "run_gpu.py"


def _run(*args):
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def run_gpu():
    spec = importlib.util.spec_from_file_location("run_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_help_names_the_options():
    out = _run("--help")
    for option in ("--size", "--out", "--dry-run", "--require-cuda", "--benchmarks",
                   "--threads", "--skip-tests"):
        assert option in out


def test_dry_run_lists_the_cuda_tests_then_every_benchmark_on_both_devices():
    out = _run("--dry-run", "--threads", "3")
    steps = [line.split(". ", 1)[1] for line in out.splitlines()[1:]]
    names = [s.split(" ", 1)[0] for s in steps]
    assert names == ["cuda-tests", "featprop-cpu", "featprop-cuda", "featprop_memmap-cpu",
                     "featprop_memmap-cuda", "ranking-cpu", "ranking-cuda", "milk-cpu",
                     "milk-cuda", "freedom-cpu", "freedom-cuda"]
    assert "-m pytest -m cuda" in steps[0]
    for step in steps[1:]:
        device = step.split(" ", 1)[0].rsplit("-", 1)[1]
        assert f"--device {device}" in step
    for name in ("ranking", "milk", "freedom"):
        assert all("--threads 3" in s for s in steps if s.startswith(name))
    assert all("--methods skmm" in s for s in steps if s.startswith("featprop-"))
    assert all("--n-items 500000" in s for s in steps if s.startswith("featprop_memmap"))
    assert "11 steps (size standard)" in out


def test_dry_run_sizes_and_selection():
    out = _run("--dry-run", "--size", "smoke", "--skip-tests", "--benchmarks", "milk",
               "freedom")
    steps = [line.split(". ", 1)[1] for line in out.splitlines()[1:]]
    assert [s.split(" ", 1)[0] for s in steps] == ["milk-cpu", "milk-cuda", "freedom-cpu",
                                                   "freedom-cuda"]
    assert all("--quick --epochs 1" in s for s in steps)
    full = _run("--dry-run", "--size", "full", "--skip-tests", "--benchmarks", "milk")
    assert "--quick" not in full


def test_summary_pairs_cpu_and_cuda_figures_and_speed_ups(run_gpu):
    results = {
        ("milk", "cpu"): [{"case": "synthetic", "pairs/s": 1000.0, "s/epoch": 6.0}],
        ("milk", "cuda"): [{"case": "synthetic", "pairs/s": 4000.0, "s/epoch": 2.0}],
        ("featprop", "cpu"): [{"case": "baby", "method": "skmm", "total_s": 3.0,
                               "per_step_s": 0.002},
                              {"case": "baby", "method": "pyg", "total_s": 99.0}],
    }
    rows = {(b, c, f): (cpu, cuda, r) for b, c, f, cpu, cuda, r in
            run_gpu.summary_rows(results)}
    assert rows[("milk", "synthetic", "pairs/s")] == (1000.0, 4000.0, 4.0)  # a rate: CUDA/CPU
    assert rows[("milk", "synthetic", "s/epoch")] == (6.0, 2.0, 3.0)  # a time: CPU/CUDA
    assert rows[("featprop", "baby", "total s")] == (3.0, None, None)  # pyg's row ignored
    assert rows[("featprop", "baby", "ms/step")] == (2.0, None, None)
    text = run_gpu.format_summary(run_gpu.summary_rows(results), None, has_cuda=False)
    assert "No CUDA device here" in text
    line = next(t for t in text.splitlines() if "pairs/s" in t)
    assert line.split()[-3:] == ["1e+03", "4e+03", "4x"]


def test_new_output_folder_never_an_existing_non_empty_one(run_gpu, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first, second = run_gpu.new_folder(None), run_gpu.new_folder(None)
    assert first != second and first.is_dir() and second.is_dir()
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "summary.txt").write_text("earlier results")
    with pytest.raises(SystemExit, match="not an empty folder"):
        run_gpu.new_folder(tmp_path / "kept")
    assert (tmp_path / "kept" / "summary.txt").read_text() == "earlier results"
    assert run_gpu.new_folder(tmp_path / "fresh").is_dir()


def test_failed_cases_are_recognised_in_the_output_of_every_benchmark(run_gpu):
    for line in ("  skmm: FAILED exit 1: ...",  # bench_featprop
                 "  FAILED: exit 1: ...",  # bench_ranking
                 "synthetic failed: exit 1 | ...",  # bench_milk
                 "synthetic on cuda (1 threads) failed: timed out after 3600 s"):  # freedom
        assert run_gpu.CASE_FAILED.search(line)
    for line in ("  skmm: build 0.08 s, propagate 0.18 s", "CUDA is not available here"):
        assert not run_gpu.CASE_FAILED.search(line)


def test_require_cuda_stops_with_status_2_without_a_device(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is available here")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--require-cuda", "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "No CUDA device is available" in proc.stdout
    assert not (tmp_path / "out").exists()  # stopped before making the output folder
