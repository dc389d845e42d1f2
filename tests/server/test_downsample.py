"""Downsampling a series for a chart (a pure function over fixed inputs): extremes and every kind of
non-finite value are kept, the output is bounded by the bucket count, and a short range comes back whole."""

from __future__ import annotations

import math

import pytest

from alerts.server.downsample import Mark, downsample


def test_a_short_series_comes_back_whole_with_its_non_finite_values_as_marks():
    steps = [0, 1, 2, 3, 5]
    values = [1.0, math.nan, 3, math.inf, -math.inf]
    out = downsample(steps, values, 0, 5, buckets=10)
    assert not out.downsampled and out.count == 5
    assert out.points == [(0, 1.0), (2, 3.0)]
    assert out.marks == [Mark(1, "NaN"), Mark(3, "Infinity"), Mark(5, "-Infinity")]
    assert out.min == (0, 1.0) and out.max == (2, 3.0)


def test_every_extreme_survives_and_the_output_is_bounded_by_the_buckets():
    n = 100_000
    steps = list(range(n))
    values = [math.sin(s / 500) for s in steps]
    values[31_337] = 99.0  # one spike up, one down, each alone in its bucket
    values[77_001] = -99.0
    out = downsample(steps, values, 0, n - 1, buckets=250)
    assert out.downsampled and out.count == n and out.bucket_width == 400
    assert len(out.points) <= 4 * 250
    assert (31_337, 99.0) in out.points and (77_001, -99.0) in out.points
    assert out.max == (31_337, 99.0) and out.min == (77_001, -99.0)
    assert [s for s, _ in out.points] == sorted({s for s, _ in out.points})  # step order, no repeats
    # Each bucket's own extremes are there too (what keeps the line's shape).
    bucket = range(4_000, 4_400)
    kept = {s for s, _ in out.points if s in bucket}
    assert max(bucket, key=values.__getitem__) in kept and min(bucket, key=values.__getitem__) in kept


def test_nan_and_infinities_are_marks_per_bucket_never_averaged_away():
    n = 10_000
    steps = list(range(n))
    values = [1.0] * n
    values[10] = math.nan
    values[11] = math.nan
    values[12] = math.inf
    values[5_000:n] = [math.nan] * (n - 5_000)  # the run diverged halfway
    out = downsample(steps, values, 0, n - 1, buckets=100)
    assert out.bucket_width == 100
    assert out.marks[:2] == [Mark(10, "NaN", 2), Mark(12, "Infinity", 1)]
    nan_buckets = [m for m in out.marks if m.value == "NaN" and m.step >= 5_000]
    assert [m.step for m in nan_buckets] == list(range(5_000, n, 100))  # one mark per bucket, every bucket
    assert sum(m.count for m in out.marks if m.value == "NaN") == 2 + 5_000
    assert len(out.marks) <= 3 * 100 and len(out.points) <= 4 * 100
    assert all(math.isfinite(v) for _, v in out.points)


def test_the_range_cuts_the_series_and_buckets_are_in_steps():
    steps = list(range(0, 10_000, 10))  # logged every 10 steps
    values = [float(s) for s in steps]
    out = downsample(steps, values, 2_000, 2_999, buckets=25)
    assert out.count == 100 and out.downsampled is False  # 100 points fit in 25 buckets of M4
    assert out.points[0] == (2_000, 2_000.0) and out.points[-1] == (2_990, 2_990.0)
    out = downsample(steps, values, 0, 9_999, buckets=10)
    assert out.downsampled and out.bucket_width == 1_000 and len(out.points) == 20  # first==min, last==max


def test_ints_and_empty_ranges():
    assert downsample([], [], 0, 10, 5).count == 0
    assert downsample([1, 2], [1.0, 2.0], 5, 3, 5).points == []
    steps = list(range(100))
    values = [2**63 - 1 if s == 50 else s for s in steps]  # ints, as the store keeps them
    out = downsample(steps, values, 0, 99, buckets=5)
    assert out.marks == [] and out.max == (50, float(2**63 - 1)) and out.min == (0, 0.0)
    with pytest.raises(ValueError):
        downsample(steps, values, 0, 99, buckets=0)


def test_a_block_index_changes_nothing_in_the_answer_and_follows_appended_points():
    from array import array

    from alerts.server.downsample import BlockIndex

    n = 50_000
    steps = array("q", range(0, 2 * n, 2))
    values = array("d", (math.cos(i / 97) * (i % 13) for i in range(n)))
    for i in (5, 6, 7_777, 40_000):
        values[i] = math.nan
    values[20_000] = math.inf
    values[20_001] = -math.inf
    index = BlockIndex(values, block=64)
    for lo, hi, buckets in ((0, 2 * n, 100), (1_001, 60_003, 37), (39_000, 40_200, 50), (0, 2 * n, 1)):
        assert downsample(steps, values, lo, hi, buckets, index) == downsample(steps, values, lo, hi, buckets)
    more = 3_000
    steps.extend(range(2 * n, 2 * n + more))
    values.extend([7.0] * (more - 1) + [math.nan])
    index.extend(values)
    assert index.length == len(values)
    assert downsample(steps, values, 0, 2 * n + more, 100, index) == downsample(steps, values, 0, 2 * n + more, 100)
