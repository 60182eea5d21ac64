"""Tensor outputs are labelled by their real dtype, so binary bytes are described correctly."""

from __future__ import annotations

import numpy as np
import pytest

from server.errors import InferenceFailed
from server.service import datatype_of


@pytest.mark.parametrize(("dtype", "name"), [(np.float32, "FP32"), (np.int64, "INT64"),
                                              (np.float16, "FP16"), (np.bool_, "BOOL")])
def test_datatype_follows_the_array(dtype: type, name: str) -> None:
    assert datatype_of(np.zeros(2, dtype=dtype)) == name


def test_unsupported_dtype_is_an_inference_error() -> None:
    with pytest.raises(InferenceFailed, match="complex64"):
        datatype_of(np.zeros(2, dtype=np.complex64))
