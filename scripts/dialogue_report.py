"""The dialogue evaluation (issue #11): 138 conversations written as customers type
(tests/dialogues/*.toml, ~20% held out in heldout.toml), each run through the real bot and
checked for its outcome. Prints passed/failed for the tuned and the held-out part and the
failing tuned conversations (held-out ones are not named: that would make them tuned).
An evaluation, not a gate: `bash scripts/test.sh` does not run it.

    .venv/bin/python scripts/dialogue_report.py
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/eval_dialogues.py", "-q", "-n", "0", "-rA",
         "--tb=no", "-p", "no:cacheprovider"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    outcome = re.compile(r"^(PASSED|FAILED) tests/eval_dialogues.py::test_dialogue\[([^\]-]+)-")
    counts: Counter[tuple[str, str]] = Counter()
    failed: list[str] = []
    for line in run.stdout.splitlines():
        match = outcome.match(line)
        if match is None:
            continue
        part = "held-out" if match.group(2) == "heldout" else "tuned"
        counts[(part, match.group(1))] += 1
        if match.group(1) == "FAILED" and part == "tuned":  # held-out: numbers only
            failed.append(line.split("::", 1)[1].split(" ")[0])
    for part in ("tuned", "held-out"):
        ok, bad = counts[(part, "PASSED")], counts[(part, "FAILED")]
        print(f"{part:9} {ok:4} passed {bad:4} failed  ({ok / max(ok + bad, 1):.0%})")
    print("\nfailing (tuned):", *failed, sep="\n  ")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
