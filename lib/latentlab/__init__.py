"""latentlab: a Jupyter-first workbook of four representation-learning studies."""

from latentlab.deferred_imports import defer_rfc3987_grammar

__version__ = "0.1.0"

defer_rfc3987_grammar()  # before any study imports altair (and so jsonschema): see latentlab.deferred_imports
