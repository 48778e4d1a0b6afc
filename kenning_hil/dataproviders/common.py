"""What the providers share: the spec of the data they deliver."""

from __future__ import annotations

from typing import Any

import numpy as np


def tensors_spec(tensors: list[Any]) -> list[dict]:
    """The spec of a list of arrays (each with its batch axis), as runners describe values."""
    return [{"shape": list(np.shape(t)), "dtype": np.asarray(t).dtype.name} for t in tensors]
