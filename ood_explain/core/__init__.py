"""The core layer: what a researcher needs to train and score an encoder, and nothing else.

``data`` (datasets, protocols, OE sources), ``augment`` (batched SimCLR views), ``models`` (encoders and the
projection head), ``losses`` (NT-Xent, OECL, HSC, BCE), ``methods`` (the method registry: one record per
method, plugins), ``training`` (the one training step and the loop, checkpoints), ``scores`` (features and OOD
scores, higher = more ID), ``metrics`` (AUROC and friends, ID positive), ``distributed`` (several processes),
``checks`` (input checks in the library's own words). Imports no other layer.
"""
