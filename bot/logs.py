"""Logging set-up: one line per event, and no flood.

`RateLimit` lets each kind of message (logger + message template) through at most `burst`
times per `per` seconds; the rest are counted and summed up in the next line of that kind
that gets through ("… 3120 similar lines suppressed"). A storm of bad requests, refused
connections or failing sends thus costs a few lines a minute, not gigabytes.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime


class RateLimit(logging.Filter):
    def __init__(
        self, burst: int = 10, per: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.burst = burst
        self.per = per
        self.clock = clock
        self._windows: dict[tuple[str, str], tuple[float, int, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = self.clock()
        start, passed, suppressed = self._windows.get(key, (now, 0, 0))
        if now - start >= self.per:
            start, passed = now, 0
        if passed >= self.burst:
            self._windows[key] = (start, passed, suppressed + 1)
            return False
        if suppressed:
            record.msg = f"{record.msg} (… {suppressed} similar lines suppressed)"
        self._windows[key] = (start, passed + 1, 0)
        if len(self._windows) > 10_000:  # many distinct messages: forget the oldest
            for old in list(self._windows)[:5_000]:
                del self._windows[old]
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line (`LOG_FORMAT=json`) for log collectors. The same content as
    the text lines — the bot never logs personal data, so neither format carries any; an
    exception contributes its type, not its message or traceback (either could quote a
    customer's text)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(verbose: bool, log_format: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.addFilter(RateLimit())
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its lines would contain the token
    logging.getLogger("alembic").setLevel(logging.WARNING)
