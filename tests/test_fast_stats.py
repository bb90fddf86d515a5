"""The detector's small-array statistics give numpy's exact bits (the pipeline's beats and
quality verdicts must not change because they skip numpy's overhead or batch rows)."""

import numpy as np
import pytest

from ecg_monitor.detector.quality import fast_median, row_medians, row_stds, second_difference


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_bits_as_numpy(dtype) -> None:
    rng = np.random.default_rng(7)
    for n in list(range(1, 40)) + [179, 180, 181, 720]:
        a = (rng.standard_normal(n) * rng.uniform(1e-3, 10) + rng.uniform(-5, 5)).astype(dtype)
        before = a.copy()
        assert fast_median(a) == float(np.median(a)), (dtype, n)
        if n > 2:
            np.testing.assert_array_equal(second_difference(a), np.diff(a, 2))
        rows = a[: n - n % 3].reshape(3, -1) if n >= 3 else a[None]
        np.testing.assert_array_equal(row_medians(rows), np.median(rows, axis=1))
        # rows contiguous, apart in memory, and strided
        for r in (rows, np.hstack([rows, rows])[:, : rows.shape[1]], np.repeat(rows, 2, axis=1)[:, ::2]):
            stds = row_stds(r)
            assert stds.dtype == dtype and [float(v) for v in stds] == [float(np.std(v)) for v in r], (dtype, n)
        np.testing.assert_array_equal(a, before)  # the input is left as it was
