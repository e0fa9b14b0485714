"""Sphinx configuration of the book (`make book`): the executed notebooks as pages, nothing re-executed.

`book/build.py` stages the pages (notebooks, landing, results, API) into a source folder beside a
copy of this file and runs Sphinx on it. Every script, style sheet and font the pages load is in
the built folder: MathJax comes from the `django-static-mathjax` wheel (MathJax 3, no Django
needed), the theme (Furo) uses the reader's system fonts, and no widget or CDN script is added.
"""

project = "ubernet_lite"
author = "ubernet_lite contributors"
copyright = "the ubernet_lite contributors"

extensions = [
    "myst_nb",  # .ipynb and .md pages (MyST markdown)
    "sphinx.ext.autodoc",  # the API page, from the package's docstrings
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]

exclude_patterns = ["_build", "_notebook_files", "_figures", "**.ipynb_checkpoints"]

# Notebooks are rendered as they were executed by `make reproduce` (or as committed).
nb_execution_mode = "off"
nb_merge_streams = True
nb_ipywidgets_js = {}  # no widget manager from a CDN (progress widgets are stripped anyway)
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

# MathJax 3, served from _static/mathjax/ (copied there by build.py), never from a CDN.
mathjax_path = "mathjax/tex-mml-chtml.js"
mathjax3_config = {
    "tex": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]]},
    "options": {"enableMenu": False},
}

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_mock_imports = []

html_theme = "furo"
html_title = "ubernet_lite: the UberNet course"
html_static_path = ["_static"]
html_favicon = "favicon.svg"  # without one, every browser asks for /favicon.ico (a 404)
html_show_sourcelink = False  # each page links to its notebook file instead
html_copy_source = False
html_last_updated_fmt = None
html_theme_options = {"navigation_with_keys": True}
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header"]  # results.md jumps from # to ###

# Docstrings that are not valid reStructuredText (``|Y+|``, ASCII diagrams) are shown verbatim.
_SPHINX_ONLY = ("Unknown interpreted text role", "Unknown directive type", "No role entry")


def _verbatim_if_invalid(app, what, name, obj, options, lines):
    """autodoc hook: a docstring docutils cannot parse cleanly becomes a plain-text block."""
    import docutils.core

    if not lines:
        return
    messages = []
    settings = {"report_level": 5, "halt_level": 5, "warning_stream": False, "env": app.env}
    try:
        doctree = docutils.core.publish_doctree("\n".join(lines), settings_overrides=settings)
    except Exception:  # a Sphinx-only construct plain docutils cannot run: leave it to Sphinx
        return
    bad = (docutils.nodes.system_message, docutils.nodes.problematic)
    for node in doctree.findall(lambda n: isinstance(n, bad)):
        if node.get("level", 3) >= 2 and not any(s in node.astext() for s in _SPHINX_ONLY):
            messages.append(node)
    if messages:
        text = [line.rstrip() for line in lines]
        lines[:] = [".. code-block:: text", ""] + [f"   {line}" if line else "" for line in text]
        lines.append("")


def setup(app):
    app.connect("autodoc-process-docstring", _verbatim_if_invalid, priority=600)
