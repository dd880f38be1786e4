"""ood-explain: OOD detection with the l2-norm of contrastive features (Le-Gia & Ahn, arXiv 2312.15288).

Modules, one per concept: ``data`` (datasets, protocols, OE sources), ``augment`` (batched SimCLR views),
``models`` (encoders + projection head), ``losses`` (NT-Xent, OECL, HSC, BCE), ``scores`` (features and
OOD scores, higher = more ID), ``metrics`` (AUROC and friends, ID positive), ``train`` (the training
loop), ``experiments`` (run folders, sweeps), ``viz`` (plotly figures and HTML reports), ``cli``.
"""

__version__ = "0.1.0"
