"""Change rules take a fast path on the training thread while their windows hold only finite values
(issue 8, log()'s amortised cost): it must give exactly what the general path gives, transitions and
template values alike, through NaN and infinities, window fills and the periodic exact re-sum."""

from __future__ import annotations

import math
import random

import pytest

from alerts.rules import engine
from alerts.rules.engine import ChangeSeries
from alerts.rules.schema import RuleFile


def change_rule(**change):
    spec = {"name": "c", "kind": "change", "metric": "loss", "for": 2,
            "change": {"by": 0.5, "relative": True, "direction": "any", "window": 3, "prior_window": 5, **change}}
    return RuleFile.model_validate({"rules": [spec]}).rules[0]


class GeneralOnly(ChangeSeries):
    """The same series, every point through the general path (RollingMean.push and mean())."""

    __slots__ = ()

    def _means_fast(self, value):
        return self._means(value)


def values(seed: int, n: int) -> list:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.01:
            out.append(rng.choice([math.nan, math.inf, -math.inf]))
        elif roll < 0.03:
            out.append(0.0)
        else:
            out.append(rng.uniform(-1, 1) * (10 if (i // 200) % 2 else 1) + 0.1 * rng.random())
    return out


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


@pytest.mark.parametrize("change", [{}, {"relative": False, "direction": "increase"}, {"window": 1, "prior_window": 1}])
def test_the_fast_path_gives_what_the_general_path_gives(monkeypatch, change):
    monkeypatch.setattr(engine, "RESUM_EVERY", 97)  # re-sum often, at odd places in the windows
    rule = change_rule(**change)
    fast, general = ChangeSeries(rule), GeneralOnly(rule)
    fired = 0
    for i, value in enumerate(values(seed=len(str(change)), n=30_000)):
        got, want = fast.push(value, float(i)), general.push(value, float(i))
        assert (got is None) == (want is None), i
        if got is not None:
            fired += 1
            assert got[0] == want[0] and got[1].keys() == want[1].keys(), i
            assert all(same(got[1][k], want[1][k]) for k in got[1]), (i, got, want)
        assert fast.current.total == general.current.total and fast.prior.total == general.prior.total, i
    assert fired > 10  # the sequence does make the rule fire and resolve: the comparison means something
