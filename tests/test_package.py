"""The package's surface: lazy imports, a quick command line, every public name importable."""

import subprocess
import sys
import time

import skmm


def test_import_does_not_load_torch_and_help_is_quick():
    code = "import sys, skmm, skmm.__main__; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    tic = time.perf_counter()
    subprocess.run([sys.executable, "-m", "skmm", "--help"], capture_output=True, check=True)
    assert time.perf_counter() - tic < 2.0


def test_every_public_name_resolves():
    for name in skmm.__all__:
        assert getattr(skmm, name) is not None
    assert set(skmm.__all__) <= set(dir(skmm))
