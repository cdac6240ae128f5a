"""The blog post's focal-loss code, rebuilt to behave exactly as published: study material, not a loss to use.

The post (a Chinese write-up of Lin et al. 2017, https://arxiv.org/abs/1708.02002) gives a Keras
closure and four PyTorch modules. Each is rebuilt here in our own code with the published inputs
(probabilities for the binary ones, logits for the multi-class ones), clamps, epsilons, defaults and
reductions, so the book and the tests can show what each one really computes:

* :mod:`focal_ref.blog.keras_blog` -- ``focal_loss`` (as published: the inner function returns ``None``)
  and ``focal_loss_returning`` (the obviously intended version that returns the loss);
* :mod:`focal_ref.blog.torch_blog` -- the binary ``FocalLoss`` and the per-label ``FocalLoss_MultiLabel``;
* :mod:`focal_ref.blog.torch_blog_multiclass` -- the multi-class ``CELoss`` and ``FocalLoss``.

The PyTorch modules keep the hard-coded ``.cuda()`` as their default (``device=None``); pass
``device="cpu"`` to study the rest of their behaviour on a machine without a GPU (one helper,
``_device.placed``, does both). The submodules import their framework when imported, so
``import focal_ref.blog`` alone imports neither torch nor keras.

For a correct focal loss use ``focal_ref`` (NumPy reference), ``focal_ref.torch`` or ``focal_ref.keras``.
"""

__all__: list[str] = []
