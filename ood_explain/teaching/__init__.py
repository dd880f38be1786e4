"""The teaching layer: what the notebooks and exercises use (needs the ``notebooks`` extra:
``pip install 'ood-explain[notebooks]'`` for plotly, ipywidgets, umap-learn and JupyterLab).

``notebook`` (load-or-train for the notebooks, tracked epochs), ``viz`` (plotly figures and HTML reports),
``widgets`` (interactive explorers), ``exercises`` (checks and hints), ``diagnostics`` (BatchNorm running vs
recomputed statistics), ``claims`` (the numbers the notebooks' prose quotes, over seeds), ``notebook_check``
(does the prose hold on this machine?). Imports the core and experiments layers, never the tools.
"""
