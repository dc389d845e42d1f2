"""Rule and channel files that would expand without end: refused with file:line, never a stalled or
crashed ``init()``.

A recursive alias made ``init()`` raise RecursionError, a 480-byte "billion laughs" file blocked it
for minutes, and so did ``alerts rules check``. Each child process here gets a bounded wait (a bound
for giving up, not a timing assertion): a child still expanding the file fails the test.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from alerts.channels.config import load_channels
from alerts.rules.loader import load_rules
from alerts.yamlfile import ALIAS_BUDGET, MAX_DEPTH

BOUND = 60  # seconds a child may take before we give up on it (2 cores shared by several test runs)

# Ten levels of ten aliases: 10^9 nodes once expanded, in under 500 bytes.
LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]\n" for prev, name in zip("abcdefghi", "bcdefghij"))

# (file body, line, message) for each kind of file that would not end.
BOMBS = {
    "recursive": ("rules:\n  - &a [*a]\n", 2, "alias *a is inside the node it refers to (a recursive alias)"),
    # line 4 (d) holds ten *c, each adding 1,111 nodes: the eighth takes the file past the budget
    "laughs": (LAUGHS, 4, f"aliases expand to more than {ALIAS_BUDGET:,} nodes by *c here"),
    "deep": ("rules: " + "[" * 3000 + "]" * 3000 + "\n", 1, f"nested more than {MAX_DEPTH} levels deep"),
}

RUN = """
    import alerts
    run = alerts.init(project="p")
    run.log({"loss": 1.0})
    run.finish()
    print("finished", flush=True)
"""


@pytest.mark.parametrize("bomb", BOMBS)
@pytest.mark.parametrize("where", ["rules", "channels"])
def test_init_logs_the_bad_file_and_the_run_goes_on(run_script, tmp_path, bomb, where):
    body, line, message = BOMBS[bomb]
    folder = tmp_path / where
    folder.mkdir()
    path = folder / "alice.yaml"
    path.write_text(body, encoding="utf-8")
    env = {"ALERTS_RULES": str(tmp_path / "rules"), "ALERTS_CHANNELS": str(tmp_path / "channels")}
    result = run_script(RUN, env=env, timeout=BOUND)
    assert result.returncode == 0 and "finished" in result.stdout, result.stderr[-3000:]
    assert f"{path}:{line}: {message}" in result.stderr, result.stderr[-3000:]
    assert ("running without rules" if where == "rules" else "not sent") in result.stderr


@pytest.mark.parametrize("command", ["check", "test"])
def test_rules_commands_name_the_line_and_exit_1(tmp_path, command):
    # Rule files (check) and rule *test* files (test) are both read within the bounds.
    path = tmp_path / "laughs.yaml"
    path.write_text(LAUGHS, encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "alerts.cli", "rules", command, str(path)],
                            capture_output=True, text=True, timeout=BOUND)
    assert result.returncode == 1
    assert f"{path}:4: aliases expand to more than {ALIAS_BUDGET:,} nodes by *c here" in result.stdout + result.stderr


def test_anchors_and_merge_keys_still_work(tmp_path):
    # Shared defaults merged into every rule of a large file stay far inside the budget.
    rules = "".join(f"  - <<: *defaults\n    name: r{i}\n    metric: m{i}\n" for i in range(300))
    (tmp_path / "r.yaml").write_text(
        "rules:\n  - &defaults {name: first, metric: loss, condition: non-finite, level: ERROR}\n"
        + rules + "  - <<: *defaults\n    name: warn\n    level: WARN\n", encoding="utf-8")
    ruleset = load_rules([tmp_path])
    assert len(ruleset) == 302
    assert {r.rule.level for r in ruleset.rules[:-1]} == {"ERROR"} and ruleset.rules[-1].rule.level == "WARN"
    assert ruleset.rules[150].rule.metric == "m149" and ruleset.rules[150].source == f"{tmp_path / 'r.yaml'}:450"

    (tmp_path / "bob.yaml").write_text(
        "user: bob\nchannels:\n  - &mail {type: email, to: bob@example.com, min_level: ERROR}\n"
        "  - <<: *mail\n    min_level: WARN\n  - *mail\n", encoding="utf-8")
    destinations = load_channels([tmp_path / "bob.yaml"], env={}).of("bob")
    assert [d.config.min_level for d in destinations] == ["ERROR", "WARN", "ERROR"]



# Saved by an editor in Latin-1 / cp1252: "café" and "°" are single bytes that are not UTF-8.
LATIN1 = {
    "rules": b'rules:\n  - name: r\n    metric: loss\n    condition: "> 1"\n    title: "caf\xe9 \xb0"\n',
    "channels": b"user: alice\nchannels:\n  - type: email\n    to: caf\xe9@example.com\n",
}


@pytest.mark.parametrize("where", ["rules", "channels"])
def test_a_file_not_in_utf8_is_an_error_with_its_line_and_the_run_goes_on(run_script, tmp_path, where):
    folder = tmp_path / where
    folder.mkdir()
    path = folder / "alice.yaml"
    path.write_bytes(LATIN1[where])
    env = {"ALERTS_RULES": str(tmp_path / "rules"), "ALERTS_CHANNELS": str(tmp_path / "channels")}
    result = run_script(RUN, env=env, timeout=BOUND)  # init() raised UnicodeDecodeError
    assert result.returncode == 0 and "finished" in result.stdout, result.stderr[-3000:]
    line = 5 if where == "rules" else 4
    assert f"{path}:{line}: not UTF-8 text (byte 0xe9); save the file as UTF-8" in result.stderr


def test_rules_check_reports_a_file_not_in_utf8(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(LATIN1["rules"])
    result = subprocess.run([sys.executable, "-m", "alerts.cli", "rules", "check", str(path)],
                            capture_output=True, text=True, timeout=BOUND)
    assert result.returncode == 1, result.stderr  # was a traceback
    assert f"{path}:5: not UTF-8 text" in result.stderr and "Traceback" not in result.stderr
