"""The tools layer: the ``ood-explain`` command (``cli``), the training benchmark (``bench``) and the GPU
check (``gpu_check``). May import every other layer; nothing imports it but ``ood_explain.__main__``."""
