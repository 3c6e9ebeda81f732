"""Arrays for the model: torch tensors when torch is installed, numpy arrays otherwise.

torch is optional and imported only when a tensor is made, never when owa_builders is imported.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

import numpy as np

TensorType = Literal["pt", "np"]


def default_tensor_type() -> TensorType:
    return "pt" if importlib.util.find_spec("torch") is not None else "np"


def check_tensor_type(tensor_type: TensorType | None) -> TensorType:
    """`tensor_type`, or the default when None."""
    if tensor_type is None:
        return default_tensor_type()
    if tensor_type not in ("pt", "np"):
        raise ValueError(f"return_tensors must be 'pt' or 'np', not {tensor_type!r}")
    return tensor_type


def as_tensor(values, tensor_type: TensorType, dtype=np.int64):
    """`values` (a list or numpy array) as a tensor of `tensor_type`, with numpy dtype `dtype`."""
    array = np.asarray(values, dtype=dtype)
    if tensor_type == "np":
        return array
    import torch

    return torch.from_numpy(array)


def concatenate(arrays: list):
    """Arrays (numpy, or torch tensors) joined along their first axis."""
    if isinstance(arrays[0], np.ndarray):
        return np.concatenate(arrays)
    import torch

    return torch.cat(arrays)
