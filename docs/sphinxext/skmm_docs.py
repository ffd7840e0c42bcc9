"""Helpers for the skmm documentation build (imported by ``conf.py`` and sphinx-gallery)."""

import re
from pathlib import Path

from docutils import nodes
from sphinx_gallery.sorting import _SortKey

# Gallery order: the quick start first, then the rest. Files not listed follow, by name.
# Add new examples here (MILK, pipelines, ...) where they belong in the reading order.
EXAMPLE_ORDER = [
    "plot_featprop_quickstart.py",
    "plot_featprop_missing_rates.py",
    "plot_compare_normalisations.py",
    "plot_choose_imputer.py",
    "plot_milk_cold_start.py",
    "plot_milk_robustness.py",
    "plot_pipeline_gridsearch.py",
    "plot_dask_gridsearch.py",
]


class ExampleOrder(_SortKey):
    """sphinx-gallery ``within_subsection_order``: :data:`EXAMPLE_ORDER`, then by file name."""

    def __call__(self, filename):
        name = Path(filename).name
        if name in EXAMPLE_ORDER:
            return f"0{EXAMPLE_ORDER.index(name):04d}"
        return f"1{name}"


def silence_foreign_missing_refs(app, env, node, contnode):
    """``missing-reference`` handler for offline builds.

    Docstrings inherited from scikit-learn (``set_output``, ``get_metadata_routing``, ...)
    point at scikit-learn's own labels and glossary; without the intersphinx inventories those
    cannot resolve and Sphinx would warn. Offline, such references from docstrings that live
    outside this repository are rendered as plain text. References written in skmm's own
    docstrings and pages are left alone, so a broken one still fails the ``-W`` build.
    """
    source = node.source or ""
    if not source:
        from sphinx.util.nodes import get_node_source

        try:
            source = get_node_source(node) or ""
        except ValueError:
            source = ""
    # autodoc names a docstring's source "<file>:docstring of <module>.<qualname>", the module
    # being where the docstring was written (sklearn.base for an inherited method).
    _, sep, owner = source.rpartition("docstring of ")
    if sep and not owner.startswith("skmm."):
        return contnode
    return None


# "Recall@20" is a valid e-mail address to docutils, which turns it into a mailto link.
_METRIC_AT_K = re.compile(r"^[\w.-]+@(\d+|k)$", re.IGNORECASE)


def unlink_metric_names(app, doctree):
    """``doctree-read`` handler: render metric names such as ``NDCG@20`` as plain text."""
    for ref in list(doctree.findall(nodes.reference)):
        if ref.get("refuri", "").startswith("mailto:") and _METRIC_AT_K.match(ref.astext()):
            ref.replace_self(nodes.Text(ref.astext()))


# sphinx-gallery's "Computation times" pages load jQuery and DataTables from CDNs to make their
# table sortable. Offline those requests fail (or hang on a network that drops them); the
# table is written sorted by time already, so the pages lose nothing without the scripts.
_REMOTE_TABLE_SCRIPTS = re.compile(
    r"^  \.\. raw:: html\n\n(?:    .*\n|\n)*?(?=  \.\. list-table::)", re.MULTILINE)


def drop_remote_table_scripts(app, docname, source):
    """``source-read`` handler: remove the CDN scripts from the computation-times pages."""
    if docname.endswith("sg_execution_times"):
        source[0], n = _REMOTE_TABLE_SCRIPTS.subn("", source[0])
        if n == 0 and "cdn.datatables" in source[0]:
            raise RuntimeError(f"{docname}: sphinx-gallery's table scripts changed form; update "
                               f"skmm_docs._REMOTE_TABLE_SCRIPTS.")
