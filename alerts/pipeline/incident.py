"""What a group's message says about the incident: how many runs (or DDP ranks, each a run) are in it.

Pure: it reads Notifications (run id and name, group, project, rule, title, status, level) and
returns text, unescaped; Slack and email escape it their own way. A group's follow-up message counts
the whole incident, the alerts its earlier messages carried (``earlier``) as well as its own:

    12 runs of sweep-1 failed: trial-0, trial-1, trial-2, trial-3, trial-4, trial-5, trial-6, trial-7, trial-8, trial-9 +2 more

The headline comes from the titles when they say the same thing of each run: each title with its
run's name taken out (``"{run.name} failed"`` -> ``"_ failed"``) is one phrase, and the runs are put
back as one subject ("12 runs of sweep-1"). Otherwise it names the rule (or the count of alerts).
"""

from __future__ import annotations

from dataclasses import dataclass
import re
from typing import Iterable, Sequence

from alerts.channels.base import Notification

SHOWN_RUNS = 10  # run names listed before "+N more"
INCIDENT_GAP = 300.0  # messages of one group less than this apart (s) belong to one incident
_HOLE = "\x00"  # where a run's name stood in its title


@dataclass(frozen=True)
class Incident:
    """A group's alerts so far, by run: ``runs`` holds each run's name once, first alerted first."""

    alerts: int
    runs: tuple[str, ...]
    headline: str

    @property
    def many_runs(self) -> bool:
        """More than one run is in it: the message is about the incident, not one run's alert."""
        return len(self.runs) > 1

    def run_list(self, shown: int = SHOWN_RUNS) -> str:
        """``trial-0, trial-1, ... +2 more``: the first ``shown`` run names, then how many more."""
        names = ", ".join(self.runs[:shown])
        more = len(self.runs) - shown
        return names + (f" +{more} more" if more > 0 else "")

    def line(self) -> str:
        """One line: the headline and the runs."""
        return f"{self.headline}: {self.run_list()}"


def summarize(notifications: Sequence[Notification], earlier: Iterable[Notification] = ()) -> Incident:
    """The incident of a group's message: its ``notifications`` and the ``earlier`` ones of the same
    group that previous messages carried (oldest first)."""
    everything = [*earlier, *notifications]
    names: dict[str, str] = {}
    for n in everything:
        names.setdefault(n.run_id, n.run_name)
    runs = tuple(names.values())
    return Incident(alerts=len(everything), runs=runs, headline=_headline(everything, len(runs)))


def _headline(everything: list[Notification], n_runs: int) -> str:
    subject = _subject(everything, n_runs)
    resolved = "RESOLVED " if all(n.status == "resolved" for n in everything) else ""
    phrases = {_without_run(n) for n in everything}
    if len(phrases) == 1:
        (phrase,) = phrases
        if _HOLE in phrase:
            return resolved + phrase.replace(_HOLE, subject)
    rules = {n.rule for n in everything}
    if len(rules) == 1 and None not in rules:
        return f"{resolved}{rules.pop()}: {subject}"
    return f"{resolved}{len(everything)} alerts: {subject}"


def _without_run(n: Notification) -> str:
    """The title with its run's name, as a whole word, replaced by a hole."""
    if not n.run_name:
        return n.title
    return re.sub(rf"(?<![\w-]){re.escape(n.run_name)}(?![\w-])", _HOLE, n.title)


def _subject(everything: list[Notification], n_runs: int) -> str:
    """``12 runs of sweep-1`` (their group), ``3 runs in vision`` (their project), or ``4 runs``."""
    runs = f"{n_runs} run" + ("s" if n_runs != 1 else "")
    groups = {n.run_group for n in everything}
    if len(groups) == 1 and None not in groups:
        return f"{runs} of {groups.pop()}"
    projects = {n.project for n in everything}
    return f"{runs} in {projects.pop()}" if len(projects) == 1 else runs


def current(sent: Sequence[tuple[float, Notification]], now: float, gap: float = INCIDENT_GAP) -> list[Notification]:
    """The incident still going on at ``now``: of a group's sent alerts (``(sent_at, notification)``,
    in any order), those whose messages followed each other, the last one, less than ``gap`` apart;
    oldest first. A group quiet for ``gap`` starts a new incident."""
    kept: list[tuple[float, Notification]] = []
    edge = now
    for sent_at, n in sorted(sent, key=lambda pair: pair[0], reverse=True):
        if edge - sent_at >= gap:
            break
        kept.append((sent_at, n))
        edge = sent_at
    return [n for _, n in reversed(kept)]

