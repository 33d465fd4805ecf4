"""Parameter sweeps: ``grid`` (the YAML file), ``run`` (papermill over the grid on Dask),
``results`` (collect, summarise over seeds) and ``plots`` (the summary chart)."""
