"""The token buckets that pace each destination and cap each user, on explicit times."""

from __future__ import annotations

from alerts.pipeline.ratelimit import TokenBucket, bucket_for, user_bucket


def test_slack_pace_is_one_a_second_after_a_short_burst():
    bucket = bucket_for("slack")
    assert [bucket.take(100.0) for _ in range(3)] == [True, True, False]
    assert bucket.next_at(100.0) == 101.0
    assert not bucket.take(100.9) and bucket.take(101.0) and not bucket.take(101.5)


def test_pause_until_a_retry_after():
    bucket = TokenBucket(rate=1.0, burst=2.0)
    bucket.take(0.0)
    bucket.pause_until(20.0)
    assert not bucket.ready(19.9) and bucket.next_at(19.0) == 20.0
    assert bucket.take(20.0) and not bucket.take(20.0)


def test_user_cap_per_hour():
    bucket = user_bucket()
    assert sum(bucket.take(0.0) for _ in range(50)) == 20  # the burst
    assert bucket.next_at(0.0) == 30.0  # 120 an hour: one every 30 s
    assert sum(bucket.take(3600.0) for _ in range(200)) == 20  # never more than the burst at once
