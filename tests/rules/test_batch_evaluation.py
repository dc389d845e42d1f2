"""Rules evaluated on a batch of rows (``RunRules.observe_rows``, issue 8: ``log()`` in a tight loop
hands its rows to the rules a batch at a time) give exactly what one ``observe_row`` call per row
gives: the same transitions, in the same order, at the same steps and times, with the same template
values, through NaN, infinities, ints, strings, missing keys, window fills and exact re-sums."""

from __future__ import annotations

import math
import random

import pytest

from alerts.rules import engine
from alerts.rules.engine import RunRules
from alerts.rules.schema import RuleFile, RunInfo

RUN = RunInfo(id="r1", name="run-1", project="vision", owner="alice")

RULES = [
    {"name": "not-finite", "metric": "*loss*", "condition": "non-finite"},
    {"name": "divergence", "kind": "change", "metric": "*loss*", "for": 2,
     "change": {"by": 0.5, "relative": True, "direction": "increase", "window": 3, "prior_window": 7}},
    {"name": "drop", "kind": "change", "metric": "acc",
     "change": {"by": 0.2, "direction": "decrease", "window": 2, "prior_window": 4}},
    {"name": "high", "metric": "*loss*", "condition": "> 3", "for": 2, "keep_firing_for": 2},
    {"name": "mean-high", "metric": "val/loss", "condition": "> 1", "window": 4, "aggregate": "mean"},
    {"name": "min-low", "metric": "acc", "condition": "< 0.1", "window": 3, "aggregate": "min"},
    {"name": "is-nan", "metric": "acc", "condition": "nan"},
    {"name": "quiet", "kind": "stalled", "after": "30s"},
]


def make_rules():
    return RunRules(RuleFile.model_validate({"rules": RULES}).rules, RUN, start=0.0)


def value(rng: random.Random, i: int):
    roll = rng.random()
    if roll < 0.02:
        return rng.choice([math.nan, math.inf, -math.inf])
    if roll < 0.04:
        return rng.choice([1, 5, True, 10**400, "text", [1.0]])
    if roll < 0.10:
        return None  # not logged in this row
    return rng.uniform(0, 1) * (6 if (i // 150) % 2 else 1)


def rows_of(seed: int, n: int) -> tuple[list, list]:
    rng = random.Random(seed)
    rows, nows, now = [], [], 0.0
    for i in range(n):
        row = {}
        for key in rng.sample(["train/loss", "acc", "val/loss", "lr"], 4):  # keys in varying order
            v = value(rng, i)
            if v is not None:
                row[key] = v
        row.update({"_step": i, "_runtime": now, "_timestamp": now})
        now += 40.0 if rng.random() < 0.01 else 0.5  # now and then a silence the stalled rule sees
        rows.append(row)
        nows.append(now)
    return rows, nows


def described(transitions) -> list:
    def same_nan(v):
        return "nan" if isinstance(v, float) and math.isnan(v) else v

    return [(t.rule.name, t.status, t.metric, same_nan(t.value), t.step, t.at,
             {k: same_nan(v) for k, v in t.fields.items()}) for t in transitions or ()]


@pytest.mark.parametrize("resum_every", [61, 100_000], ids=["re-sum inside batches", "no re-sum"])
@pytest.mark.parametrize("seed", range(4))
def test_a_batch_gives_what_one_call_per_row_gives(monkeypatch, seed, resum_every):
    monkeypatch.setattr(engine, "RESUM_EVERY", resum_every)
    rows, nows = rows_of(seed, 6_000)
    one_by_one, batched = make_rules(), make_rules()
    want, got = [], []
    rng = random.Random(seed)
    start = 0
    while start < len(rows):
        size = rng.choice([1, 2, 7, 50, 333, 1024])
        for row, now in zip(rows[start:start + size], nows[start:start + size]):
            plain = {k: v for k, v in row.items() if not k.startswith("_")}
            want += described(one_by_one.observe_row(plain, row["_step"], now))
        for stalled in (one_by_one.check_stalled(nows[min(start + size, len(rows)) - 1] + 35.0),):
            want += described(stalled)
        got += described(batched.observe_rows(rows[start:start + size], nows[start:start + size]))
        got += described(batched.check_stalled(nows[min(start + size, len(rows)) - 1] + 35.0))
        start += size
    assert len(want) > 100 and {t[0] for t in want} == {r["name"] for r in RULES}  # every rule had its say
    assert got == want
