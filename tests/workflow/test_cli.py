"""The `rlheals` command line: solve, verify, errors, no torch, speed."""
import json
import random
import subprocess
import sys
import time

import pytest


def run_cli(*args, stdin=""):
    return subprocess.run([sys.executable, "-m", "rlheals.cli", *args], input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_solve_one_hand():
    res = run_cli("solve", "3", "3", "8", "8", "--rule", "ood")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out == {"cards": ["3", "3", "8", "8"], "rule": "ood", "numbers": [3, 3, 8, 8],
                   "solvable": True, "solutions": ["8/(3-8/3)"]}


def test_solve_reads_hands_from_stdin():
    res = run_cli("solve", "-", "--rule", "ood", stdin="1 1 1 1\nK, q, j, A\n\n13 12 11 1\n")
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["solvable"] for r in rows] == [False, True, True]
    assert rows[1]["cards"] == ["K", "Q", "J", "A"] and rows[1]["numbers"] == [13, 12, 11, 1]
    assert rows[1]["solutions"] == rows[2]["solutions"]


def test_verify_formula_and_reply_on_stdin():
    res = run_cli("verify", "K", "2", "2", "A", "--formula", "(10+2)*2*1=24", "--rule", "id")
    assert json.loads(res.stdout) == {"outcome": "correct", "reward": 5.0, "binary_reward": 1.0,
                                      "formula": "(10+2)*2*1", "reason": "the formula equals 24"}
    res = run_cli("verify", "K", "2", "2", "A", "--rule", "ood", stdin='{"formula": "(10+2)*2*1"}')
    out = json.loads(res.stdout)
    assert out["outcome"] == "wrong_numbers" and out["reward"] == -4.0 and "[10]" in out["reason"]


@pytest.mark.parametrize("args, stdin, message", [
    (["solve", "3", "3", "X", "8"], "", "bad card 'X'"),
    (["solve", "-"], "1 2 3 4\n1 2 3 99\n", "stdin line 2"),
    (["solve"], "", "no cards given"),
    (["verify", "K", "2", "0", "A", "--formula", "1"], "", "bad card '0'"),
])
def test_errors_exit_2_with_a_message(args, stdin, message):
    res = run_cli(*args, stdin=stdin)
    assert res.returncode == 2 and message in res.stderr


def test_bad_rule_is_a_usage_error():
    res = run_cli("solve", "1", "2", "3", "4", "--rule", "face10")
    assert res.returncode == 2 and "invalid choice" in res.stderr


def test_cli_does_not_import_torch():
    code = ("import sys; from rlheals.cli import main; "
            "main(['solve', '3', '3', '8', '8']); main(['verify', '3', '3', '8', '8', '--formula', '8/(3-8/3)']); "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr


def test_entry_point_is_installed():
    exe = subprocess.run([sys.executable, "-c", "import shutil, sys, os; print(shutil.which('rlheals', path=os.path.dirname(sys.executable)))"],
                         capture_output=True, text=True).stdout.strip()
    assert exe != "None"
    res = subprocess.run([exe, "solve", "6", "6", "6", "6"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "6+6+6+6" in json.loads(res.stdout)["solutions"]


def test_solve_5000_hands_takes_seconds():
    rng = random.Random(0)
    hands = "\n".join(" ".join(rng.choice("A 2 3 4 5 6 7 8 9 10 J Q K".split()) for _ in range(4)) for _ in range(5000))
    for rule in ("id", "ood"):
        start = time.perf_counter()
        res = run_cli("solve", "-", "--rule", rule, stdin=hands)
        seconds = time.perf_counter() - start
        assert res.returncode == 0 and len(res.stdout.splitlines()) == 5000
        print(f"rlheals solve - on 5,000 hands ({rule} rule): {seconds:.2f} s")
        assert seconds < 60
