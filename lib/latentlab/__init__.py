"""latentlab: a Jupyter-first workbook of four representation-learning studies.

Importing the package defers one import that every kernel paid for and no study uses: the RFC 3987
grammar. altair imports jsonschema, and jsonschema's format module imports ``rfc3987_syntax`` when it
is installed (JupyterLab's ``jupyter_events`` pulls it in) to offer the optional ``iri`` format check.
``rfc3987_syntax`` builds a Lark parser at import time: 0.5-1.2 s of CPU in every kernel that draws a
chart, for a check that altair, which does not enable format checking, never makes.
``defer_rfc3987_grammar`` puts a stand-in module in its place before anything imports jsonschema; its
attributes load the real module on first use and delegate to it, so a check that does run gets the
real answer. It lives here, written with the standard library only, because only the package's own
``__init__`` runs before every study module (and a package ``__init__`` imports no sibling).
"""


from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

GRAMMAR_MODULE = "rfc3987_syntax"


def _real_module(stand_in: types.ModuleType) -> types.ModuleType:
    """Import the real module in the stand-in's place (once) and return it."""
    loaded = sys.modules.get(GRAMMAR_MODULE)
    if loaded is not None and loaded is not stand_in:
        return loaded
    sys.modules.pop(GRAMMAR_MODULE, None)
    try:
        return importlib.import_module(GRAMMAR_MODULE)
    except BaseException:
        sys.modules[GRAMMAR_MODULE] = stand_in
        raise

__version__ = "0.1.0"


def defer_rfc3987_grammar() -> bool:
    """Install the stand-in; True when it was installed (see the module docstring for why)."""
    if GRAMMAR_MODULE in sys.modules or "jsonschema" in sys.modules:
        return False
    spec = importlib.util.find_spec(GRAMMAR_MODULE)
    if spec is None:
        return False  # not installed: jsonschema's own ImportError path stays as it is
    stand_in = types.ModuleType(GRAMMAR_MODULE, "Stand-in that imports rfc3987_syntax on first use.")
    stand_in.__spec__ = spec

    def is_valid_syntax(*args: Any, **kwargs: Any) -> Any:
        return _real_module(stand_in).is_valid_syntax(*args, **kwargs)

    def __getattr__(name: str) -> Any:  # PEP 562: any other attribute comes from the real module
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return getattr(_real_module(stand_in), name)

    stand_in.is_valid_syntax = is_valid_syntax
    stand_in.__getattr__ = __getattr__
    sys.modules[GRAMMAR_MODULE] = stand_in
    return True


defer_rfc3987_grammar()  # before any study imports altair (and so jsonschema)
