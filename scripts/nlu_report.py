"""Evaluate `handlers.support.understanding` on the tuned and the held-out evaluation sets.

Run: .venv/bin/python scripts/nlu_report.py              # both sets, reported separately
     .venv/bin/python scripts/nlu_report.py other.tsv    # one file

The sets (tab-separated, header `text<TAB>expected[<TAB>group]`):

- tests/data/nlu_eval.tsv    — the *tuned* set: topics.toml was adjusted while looking at it.
- tests/data/nlu_heldout.tsv — the *held-out* set: written before any tuning by people who
  had not seen the bot; do not tune against it (issue #11, "Measured, not assumed"). Only
  its aggregate numbers are printed, never its rows.

`expected` is a topic or intent key of topics.toml, or "unknown" (chit-chat: no direct
answer). Labels the matcher does not know yet (behaviour the issue demands but the knowledge
base lacks, e.g. "leak_report") are counted as misses and listed.

Groups: `vi` (Vietnamese with diacritics), `vi_plain` (without diacritics / teencode), `en`
(English, no platform language hint). Rows without a group column get one guessed from the
text (marked "guessed").

Two measures per group:
- first reply: what the customer gets first is right — the expected key in the answer band
  (a "did you mean…?" menu is a miss), or, for "unknown", no confident answer at all. This is
  the issue's goal (≥ 95 % on held-out, in every group).
- top-1: the best-scoring key is the expected one, whatever its confidence.

Then the confusions (first-reply misses), per-key counts, confidence bands and the mean time
per `understand()` call.
"""

from __future__ import annotations

import csv
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a plain script from any directory

from handlers.support.understanding import (  # noqa: E402
    ANSWER_THRESHOLD,
    Understanding,
    all_intents,
    all_topics,
    understand,
)

DATA_DIR = ROOT / "tests" / "data"
TUNED_FILE = DATA_DIR / "nlu_eval.tsv"
HELDOUT_FILE = DATA_DIR / "nlu_heldout.tsv"
GROUPS = ("vi", "vi_plain", "en")
TIMING_ROUNDS = 20

# Words that mark an ASCII message as English (none of them is a Vietnamese syllable that
# customers type without diacritics).
_ENGLISH_WORDS = frozenset(
    (
        "i", "you", "your", "my", "me", "what", "whats", "what's", "how", "does", "is", "are",
        "who", "where", "why", "please", "want", "information", "of", "and", "thank", "thanks",
        "hello", "good", "morning", "evening", "with", "will", "should", "about", "have", "get",
        "lol", "weather", "keep", "store", "someone", "if", "wrong", "anyone", "place",
        "painting", "paintings", "damaged", "return", "for", "sell", "share", "delete",
        "remove", "erase", "complain", "complaint", "human", "person", "talk", "show", "which",
        "i'd", "id", "dont", "don't", "there", "appreciate",
    )
)  # fmt: skip
_WORD = re.compile(r"[a-z']+")


@dataclass(frozen=True)
class Row:
    text: str
    expected: str
    group: str
    guessed: bool = False  # group guessed from the text (no group column)


def guess_group(text: str) -> str:
    """ "vi" when the text carries Vietnamese letters, "en" when it has English words,
    else "vi_plain"."""
    if any(ch.isalpha() and ord(ch) > 127 for ch in text):
        return "vi"
    words = set(_WORD.findall(text.lower()))
    return "en" if words & _ENGLISH_WORDS else "vi_plain"


def load_rows(path: Path) -> list[Row]:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [
            Row(r["text"], r["expected"], r["group"])
            if r.get("group")
            else Row(r["text"], r["expected"], guess_group(r["text"]), guessed=True)
            for r in reader
        ]


def predicted(result: Understanding) -> str:
    """The best key, or "unknown"."""
    return result.key if result.kind != "unknown" and result.key else "unknown"


def band(result: Understanding) -> str:
    if result.kind == "unknown":
        return "unknown"
    return "answer" if result.confidence >= ANSWER_THRESHOLD else "suggest"


def first_reply_right(row: Row, result: Understanding) -> bool:
    if row.expected == "unknown":
        return not result.confident
    return result.confident and result.key == row.expected


def _pct(right: int, total: int) -> str:
    return f"{right / total:6.1%} ({right:>3})" if total else "     —      "


def report(title: str, rows: list[Row], *, details: bool = True) -> None:
    """Accuracy per group; with `details`, the misses, confusions and per-key counts (never
    for the held-out set: reading its individual misses would turn it into a tuned set)."""
    results = [understand(row.text) for row in rows]
    pairs = list(zip(rows, results, strict=True))
    guessed = " (groups guessed from the text)" if any(r.guessed for r in rows) else ""
    print(f"\n==== {title}: {len(rows)} rows{guessed}")

    known = {*all_topics(), *all_intents(), "unknown"}
    unknown_labels = Counter(r.expected for r in rows if r.expected not in known)
    if unknown_labels:
        listed = ", ".join(f"{k} ({n} rows)" for k, n in sorted(unknown_labels.items()))
        print(f"labels the matcher does not have yet (always misses): {listed}")

    print(f"\n  {'group':<9} {'rows':>4}   {'first reply':<13}  {'top-1':<13}")
    for group in (*GROUPS, "all"):
        subset = [(r, u) for r, u in pairs if group == "all" or r.group == group]
        first = sum(first_reply_right(r, u) for r, u in subset)
        top1 = sum(predicted(u) == r.expected for r, u in subset)
        n = len(subset)
        print(f"  {group:<9} {n:>4}   {_pct(first, n)}  {_pct(top1, n)}")
    if not details:
        print("\n  (held-out: aggregate numbers only)")
        return

    misses = [(r, u) for r, u in pairs if not first_reply_right(r, u)]
    print(f"\n  first-reply misses ({len(misses)}): group  expected → got  confidence band")
    for r, u in sorted(misses, key=lambda p: (GROUPS.index(p[0].group), p[0].expected)):
        alts = ", ".join(u.alternatives)
        print(
            f"    {r.group:<8} {r.expected:>16} → {predicted(u):<16} {u.confidence:.2f} "
            f"{band(u):<7} {r.text!r}  [{alts}]"
        )

    confusions = Counter((r.expected, predicted(u)) for r, u in misses)
    print("\n  confusion pairs (expected → got: count)")
    for (expected, got), n in confusions.most_common():
        print(f"    {expected:>16} → {got:<16} {n}")

    print("\n  per key: rows / first reply right / top-1 predicted as")
    expected_counts = Counter(r.expected for r in rows)
    right_counts = Counter(r.expected for r, u in pairs if first_reply_right(r, u))
    predicted_counts = Counter(predicted(u) for u in results)
    for key in sorted(expected_counts):
        print(
            f"    {key:<16} {expected_counts[key]:>3} {right_counts[key]:>3} "
            f"{predicted_counts[key]:>3}"
        )

    print(f"\n  bands: {dict(Counter(band(u) for u in results))}")
    suggest_right = sum(
        1 for r, u in pairs if band(u) == "suggest" and r.expected in u.alternatives
    )
    print(f"  suggest band with the expected key among the alternatives: {suggest_right}")


def timing(rows: list[Row]) -> None:
    texts = [row.text for row in rows]
    start = time.perf_counter()
    for _ in range(TIMING_ROUNDS):
        for text in texts:
            understand(text)
    mean_ms = (time.perf_counter() - start) * 1000 / (TIMING_ROUNDS * len(texts))
    long_text = "shop luu thong tin cua minh bao lau " * 300
    start = time.perf_counter()
    understand(long_text)
    long_ms = (time.perf_counter() - start) * 1000
    print(
        f"\ntiming: mean {mean_ms:.3f} ms per understand() over "
        f"{TIMING_ROUNDS}×{len(texts)} calls (target < 2 ms); {len(long_text)}-char message "
        f"{long_ms:.3f} ms"
    )


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        sets = [(argv[1], load_rows(Path(argv[1])))]
    else:
        sets = [
            ("tuned (nlu_eval.tsv)", load_rows(TUNED_FILE)),
            ("held-out (nlu_heldout.tsv)", load_rows(HELDOUT_FILE)),
        ]
    understand("warm-up")  # loads topics.toml once, outside the timings
    for title, rows in sets:
        report(title, rows, details=HELDOUT_FILE.name not in title)
    timing([row for _, rows in sets for row in rows])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
