"""Compact arrays on the wire: float16 bytes, base64 inside the JSON envelope.

A view-sized array (an attention window, an overview) travels as ``PackedArray`` instead of
nested JSON floats: 2 bytes a value plus a third for base64, against ~8-20 characters as
JSON, and it decodes with one ``np.frombuffer`` instead of a JSON parse of every number.
Errors keep the usual JSON error envelope; only the numbers are packed.
"""

from __future__ import annotations

import base64

import numpy as np
import torch
from pydantic import BaseModel, Field
from torch import Tensor


class PackedArray(BaseModel):
    dtype: str = Field(default="float16", description="numpy dtype of `data`, little-endian")
    shape: list[int]
    data: str = Field(description="base64 of the C-order array bytes")


def pack(values: Tensor | np.ndarray) -> PackedArray:
    """`values` as float16 bytes (values in [0, 1] keep ~3 significant digits)."""
    if isinstance(values, Tensor):
        values = values.detach().to(device="cpu", dtype=torch.float32).numpy()
    arr = np.ascontiguousarray(values, dtype="<f2")
    return PackedArray(shape=list(arr.shape), data=base64.b64encode(arr.tobytes()).decode())


def unpack(packed: PackedArray | dict) -> np.ndarray:
    """The array of a `PackedArray` (or its JSON dict), as float32."""
    p = packed if isinstance(packed, PackedArray) else PackedArray.model_validate(packed)
    raw = base64.b64decode(p.data)
    return (
        np.frombuffer(raw, dtype=np.dtype(p.dtype).newbyteorder("<"))
        .reshape(p.shape)
        .astype(np.float32)
    )
