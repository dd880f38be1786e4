"""The tools layer: the ``ood-explain`` command (``cli``), the training benchmark (``bench``), the GPU check
(``gpu_check``) and the export of run folders to TensorBoard (``tensorboard``). May import every other layer;
nothing imports it but ``ood_explain.__main__``."""
