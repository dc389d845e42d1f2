"""Tensors (torch, or anything with ``detach``) as numpy data on the host, for histograms and media.

numpy has no bfloat16 (the usual dtype of mixed-precision training), so ``tensor.numpy()`` raises
``TypeError`` for it: such a tensor is widened to float32 first, as wandb's own ``Image`` does when
it converts a tensor. Anything that is not a tensor is returned as it is.
"""

from __future__ import annotations

from typing import Any


def host_data(data: Any) -> Any:
    """``data`` as numpy can read it: a tensor is detached, copied to the host and, when numpy has
    no dtype for it, widened to float32."""
    if not hasattr(data, "detach"):
        return data
    tensor = data.detach().cpu()
    try:
        return tensor.numpy()
    except TypeError:  # bfloat16 and other dtypes numpy lacks
        return tensor.float().numpy()
