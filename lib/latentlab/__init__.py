"""latentlab: a Jupyter-first workbook of four representation-learning studies."""

__version__ = "0.1.0"
