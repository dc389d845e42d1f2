"""``Histogram``, and arrays logged whole: stored in the history row as wandb stores them.

wandb's rule for an array or tensor passed to ``log()``: one element is a number; up to 32 are a
list; more become a 32-bin histogram, ``{"_type": "histogram", "values": [counts], "bins": [edges]}``.
Histograms count the finite values only (``np.histogram`` cannot bin NaN or infinities).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from alerts.sdk.tensors import host_data

# wandb's limits.
MAX_BINS = 512
ARRAY_AS_LIST_MAX = 32
ARRAY_BINS = 32


def _finite_floats(data: Any):
    import numpy as np  # histograms need numpy; nothing else in the logger does

    array = np.asarray(host_data(data), dtype=np.float64).ravel()  # a tensor may be on a GPU
    return array[np.isfinite(array)]


class Histogram:
    """A histogram of ``sequence`` (a list, array or tensor) in ``num_bins`` bins (at most 512), or a
    precomputed ``np_histogram=(counts, edges)``, as ``wandb.Histogram``. Logged inline in the row."""

    _inline = True
    MAX_LENGTH = MAX_BINS

    def __init__(self, sequence: Optional[Sequence] = None, np_histogram: Optional[tuple] = None,
                 num_bins: int = 64) -> None:
        if np_histogram:
            if len(np_histogram) != 2:
                raise ValueError("Expected np_histogram to be a tuple of (values, bin_edges) or sequence to be specified")
            counts, edges = np_histogram
            self.histogram = counts.tolist() if hasattr(counts, "tolist") else list(counts)
            self.bins = edges.tolist() if hasattr(edges, "tolist") else list(edges)
        else:
            import numpy as np

            if isinstance(num_bins, int) and num_bins > self.MAX_LENGTH:
                # Before np.histogram, which would first allocate the bins (10**9 took minutes and 16 GB).
                raise ValueError(f"The maximum length of a histogram is {self.MAX_LENGTH}")
            counts, edges = np.histogram(_finite_floats(sequence), bins=num_bins)
            self.histogram, self.bins = counts.tolist(), edges.tolist()
        if len(self.histogram) > self.MAX_LENGTH:
            raise ValueError(f"The maximum length of a histogram is {self.MAX_LENGTH}")
        if len(self.histogram) + 1 != len(self.bins):
            raise ValueError("len(bins) must be len(histogram) + 1")

    def to_json(self, run: Any = None) -> dict:
        """What the history row holds."""
        return {"_type": "histogram", "values": self.histogram, "bins": self.bins}

    def __repr__(self) -> str:
        return f"Histogram({len(self.histogram)} bins)"


def array_value(value: Any) -> Any:
    """An array or tensor of several elements as wandb logs it (a list, or a histogram), or None if
    ``value`` is not an array of numbers."""
    try:
        import numpy as np
    except ImportError:
        return None
    try:
        array = np.asarray(host_data(value))
        if array.dtype.kind not in "biuf":
            return None
        if array.size <= ARRAY_AS_LIST_MAX:
            return array.tolist()
        return Histogram(array, num_bins=ARRAY_BINS).to_json()
    except Exception:  # an object that only looks like an array
        return None
