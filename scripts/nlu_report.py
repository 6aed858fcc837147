"""Evaluate `handlers.support.understanding` on tests/data/nlu_eval.tsv.

Run: .venv/bin/python scripts/nlu_report.py [path/to/other.tsv]

Prints accuracy, the confusions (expected → got, with the text), per-key counts, the
confidence bands and the mean time per `understand()` call.
"""

from __future__ import annotations

import csv
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a plain script from any directory

from handlers.support.understanding import (  # noqa: E402
    ANSWER_THRESHOLD,
    Understanding,
    understand,
)

EVAL_FILE = ROOT / "tests" / "data" / "nlu_eval.tsv"
TIMING_ROUNDS = 20


def load_eval(path: Path = EVAL_FILE) -> list[tuple[str, str]]:
    """(text, expected) rows; expected is a topic key, an intent key or "unknown"."""
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [(row["text"], row["expected"]) for row in reader]


def predicted(result: Understanding) -> str:
    """The label to compare with the eval set: the key, or "unknown"."""
    return result.key if result.kind != "unknown" and result.key else "unknown"


def main(argv: list[str]) -> int:
    rows = load_eval(Path(argv[1]) if len(argv) > 1 else EVAL_FILE)
    results = [understand(text) for text, _ in rows]  # also warms the topics cache

    wrong = [(t, e, r) for (t, e), r in zip(rows, results, strict=True) if predicted(r) != e]
    accuracy = 1 - len(wrong) / len(rows)
    print(f"accuracy: {accuracy:.1%} ({len(rows) - len(wrong)}/{len(rows)})")

    print(f"\nconfusions ({len(wrong)}):")
    for text, expected, r in wrong:
        alts = ", ".join(r.alternatives)
        print(f"  {expected:>16} → {predicted(r):<16} {r.confidence:.2f}  {text!r}  [{alts}]")

    print("\nper key: eval rows / correct / predicted as")
    expected_counts = Counter(e for _, e in rows)
    correct_counts = Counter(
        e for (_, e), r in zip(rows, results, strict=True) if predicted(r) == e
    )
    predicted_counts = Counter(predicted(r) for r in results)
    for key in sorted(expected_counts):
        print(
            f"  {key:<16} {expected_counts[key]:>3} {correct_counts[key]:>3} "
            f"{predicted_counts[key]:>3}"
        )

    bands = Counter(
        "unknown"
        if r.kind == "unknown"
        else "answer"
        if r.confidence >= ANSWER_THRESHOLD
        else "suggest"
        for r in results
    )
    print(f"\nbands: {dict(bands)}")
    suggest_right = sum(
        1
        for (_, e), r in zip(rows, results, strict=True)
        if r.kind != "unknown" and r.confidence < ANSWER_THRESHOLD and e in r.alternatives
    )
    print(f"suggest band with the expected key among the alternatives: {suggest_right}")

    texts = [text for text, _ in rows]
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
