"""What the providers share: the spec of the data they deliver, and the `dtype` parameter."""

from __future__ import annotations

from typing import Any

import numpy as np

from kenning_hil.core.errors import ConfigurationError


def tensors_spec(tensors: list[Any]) -> list[dict]:
    """The spec of a list of arrays (each with its batch axis), as runners describe values."""
    return [{"shape": list(np.shape(t)), "dtype": np.asarray(t).dtype.name} for t in tensors]


def sample_dtype(dtype: str) -> np.dtype:
    """The NumPy type of the `dtype` parameter; ConfigurationError when it names none."""
    try:
        return np.dtype(dtype)
    except TypeError:
        raise ConfigurationError(
            f"parameter 'dtype' must be a NumPy type name, got {dtype!r}") from None
