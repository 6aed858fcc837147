"""The log: `LOG_FORMAT=json` lines for collectors, and the flood limit per kind of line."""

from __future__ import annotations

import io
import json
import logging

from bot.logs import JsonFormatter, RateLimit


def logger_into(
    stream: io.StringIO, *, formatter: logging.Formatter | None = None
) -> logging.Logger:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter or logging.Formatter("%(message)s"))
    logger = logging.getLogger(f"test.{id(stream)}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def test_json_lines_carry_the_event_and_only_the_exception_type() -> None:
    stream = io.StringIO()
    log = logger_into(stream, formatter=JsonFormatter())
    log.warning("delivery to a %s chat failed: %s", "telegram", "NetworkError")
    try:
        raise ValueError("Nguyễn Văn An, 0912 345 678, 12 Hàng Bạc")  # a customer's data
    except ValueError:
        log.exception("handling failed")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "WARNING" and first["logger"] == log.name
    assert first["message"] == "delivery to a telegram chat failed: NetworkError"
    assert first["time"].endswith("+00:00")
    assert second["message"] == "handling failed" and second["exception"] == "ValueError"
    assert "0912" not in stream.getvalue() and "Traceback" not in stream.getvalue()


def test_a_storm_of_one_kind_of_line_is_summed_up() -> None:
    now = [0.0]
    stream = io.StringIO()
    log = logger_into(stream)
    log.addFilter(RateLimit(burst=3, per=60, clock=lambda: now[0]))
    for _ in range(100):
        log.warning("refused connection from %s", "127.0.0.1")
    log.warning("another kind of line")
    now[0] = 61
    log.warning("refused connection from %s", "127.0.0.1")
    lines = stream.getvalue().splitlines()
    assert lines[:3] == ["refused connection from 127.0.0.1"] * 3
    assert lines[3] == "another kind of line"
    assert lines[4] == "refused connection from 127.0.0.1 (… 97 similar lines suppressed)"
    assert len(lines) == 5
