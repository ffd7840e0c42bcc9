"""Sphinx configuration for the skmm documentation.

Build with ``make docs`` from the repository root (warnings are errors). Set
``SKMM_DOCS_OFFLINE=0`` to resolve links to scikit-learn, NumPy, SciPy, PyTorch and skorch
through intersphinx; ``make docs`` builds offline by default because the inventories need
network access.
"""

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "sphinxext"))
sys.path.insert(0, str(ROOT))

import skmm  # noqa: E402
from skmm_docs import (  # noqa: E402
    drop_remote_table_scripts, silence_foreign_missing_refs, unlink_metric_names)

OFFLINE = os.environ.get("SKMM_DOCS_OFFLINE", "0").lower() not in ("", "0", "false", "no")

# -- Project -----------------------------------------------------------------------------------

project = "skmm"
author = "skmm developers"
copyright = "skmm developers, BSD-3-Clause"
release = skmm.__version__
version = ".".join(release.split(".")[:2])

# -- General -----------------------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    # MathJax 3 from the sphinx-mathjax-offline package, copied into _static/mathjax: the
    # equations render without network access (Sphinx's default loads MathJax from a CDN,
    # and offline the pages showed raw TeX). It sets mathjax_path to the local copy.
    "sphinx-mathjax-offline",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints",
                    "auto_examples/*.ipynb", "auto_examples/*.py", "auto_examples/*.zip"]
default_role = "literal"
nitpicky = False

# -- autodoc / autosummary / numpydoc ----------------------------------------------------------

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": True}
autodoc_typehints = "none"  # the numpydoc "Parameters" sections carry the types

numpydoc_show_class_members = False  # members are listed by the autosummary class template
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = True
numpydoc_xref_ignore = "all"  # link only the aliases below, never stray words like "of"
numpydoc_xref_aliases = {
    "ndarray": "numpy.ndarray",
    "numpy.ndarray": "numpy.ndarray",
    "numpy.ma.MaskedArray": "numpy.ma.MaskedArray",
    "dtype": "numpy.dtype",
    "RandomState": "numpy.random.RandomState",
    "sparse matrix": "scipy.sparse.spmatrix",
    "scipy.sparse matrix": "scipy.sparse.spmatrix",
    "scipy.sparse.csr_matrix": "scipy.sparse.csr_matrix",
    "torch.device": "torch.device",
    "Bunch": "sklearn.utils.Bunch",
    "BaselineImputer": "skmm.BaselineImputer",
    "FeatPropImputer": "skmm.FeatPropImputer",
}

# -- intersphinx -------------------------------------------------------------------------------

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "sklearn": ("https://scikit-learn.org/stable", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "scipy": ("https://docs.scipy.org/doc/scipy", None),
    "torch": ("https://docs.pytorch.org/docs/stable", None),
    "skorch": ("https://skorch.readthedocs.io/en/stable", None),
    "matplotlib": ("https://matplotlib.org/stable", None),
    "distributed": ("https://distributed.dask.org/en/stable", None),
}
intersphinx_timeout = 10
if OFFLINE:
    # No inventories can be fetched: link nothing rather than fail the -W build on them.
    intersphinx_mapping = {}
    # numpydoc's built-in type aliases point at the Python and NumPy docs ("int" at
    # python:int, "array-like" at a NumPy glossary term): unresolved, they would warn or show
    # their prefixes. Offline, parameter types are plain text.
    numpydoc_xref_param_type = False

# -- sphinx-gallery ----------------------------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "skmm_docs.ExampleOrder",
    "doc_module": ("skmm",),
    "backreferences_dir": "generated/backreferences",
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,  # a failing example fails the build
    "min_reported_time": 1,
    "thumbnail_size": (400, 280),
}


# -- HTML --------------------------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"skmm {release}"
html_static_path = ["_static"]
html_css_files = ["skmm.css"]
html_show_sourcelink = False
html_theme_options = {
    "navbar_align": "left",
    "header_links_before_dropdown": 6,
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc", "sg_download_links", "sg_launcher_links"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
}
html_sidebars = {"index": [], "install": [], "benchmarks": []}

# -- Benchmark output ----------------------------------------------------------------------------

# The benchmarks page includes the raw output of benchmarks/bench_featprop.py once it has been
# saved to docs/bench_featprop.txt (``make bench | tee docs/bench_featprop.txt``).
_BENCH_OUT = DOCS / "bench_featprop.txt"
_BENCH_INC = DOCS / "generated" / "bench_featprop_output.inc"
_BENCH_INC.parent.mkdir(parents=True, exist_ok=True)
if _BENCH_OUT.is_file():
    _bench_rst = (
        "Raw output of ``benchmarks/bench_featprop.py``:\n\n"
        ".. literalinclude:: /bench_featprop.txt\n   :language: none\n"
    )
else:
    _bench_rst = (
        ".. note::\n\n   No saved output of ``benchmarks/bench_featprop.py`` yet: run\n"
        "   ``make bench | tee docs/bench_featprop.txt`` and rebuild to include it here.\n"
    )
if not _BENCH_INC.is_file() or _BENCH_INC.read_text() != _bench_rst:
    _BENCH_INC.write_text(_bench_rst)


def setup(app):
    app.connect("doctree-read", unlink_metric_names)
    app.connect("source-read", drop_remote_table_scripts)
    if OFFLINE:
        app.connect("missing-reference", silence_foreign_missing_refs)
