"""Structured logging and secret redaction."""

from __future__ import annotations

import io
import json

import pytest

from relay import logs


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


class TestLogs:
    def test_logs_are_json_lines_with_utc_timestamp_and_level(self) -> None:
        """Each log call writes one JSON object with ISO UTC timestamp, level and context."""
        out = io.StringIO()
        logs.configure(level="info", stream=out, cache=False)
        logs.get_logger("poller").info("page_published", district="d1", events=3)
        logs.get_logger("poller").debug("filtered_out")
        (line,) = lines(out)
        timestamp = str(line.pop("timestamp"))
        assert timestamp.endswith("Z")
        assert line == {
            "component": "poller",
            "event": "page_published",
            "district": "d1",
            "events": 3,
            "level": "info",
        }

    def test_logs_never_show_a_registered_token_even_in_exceptions(self) -> None:
        """A token in a message, a field, a header dict or a traceback is replaced everywhere."""
        out = io.StringIO()
        logs.configure(level="info", stream=out, cache=False)
        token = "tok_live_4f9a1c2e8b"
        logs.register_secret(token)
        log = logs.get_logger("poller")
        try:
            raise RuntimeError(f"401 for GET /v3.0/events: Bearer {token} rejected")
        except RuntimeError:
            log.exception(
                "poll_failed", detail=f"sent {token}", headers={"Authorization": f"Bearer {token}"}
            )
        log.info("configured", token=token, redis="redis://user:hunter2@redis:6379/0")
        text = out.getvalue()
        assert token not in text
        assert "hunter2" not in text
        first, second = lines(out)
        assert first["detail"] == "sent [REDACTED]"
        assert first["headers"] == {"Authorization": "[REDACTED]"}
        assert "Bearer [REDACTED] rejected" in str(first["exception"])
        assert second["token"] == "[REDACTED]"
        assert second["redis"] == "redis://user:[REDACTED]@redis:6379/0"

    def test_logs_scrub_secrets_of_any_length_longest_first(self) -> None:
        """A one-character secret is scrubbed too, and one inside a longer secret leaves no
        part of the longer one behind."""
        out = io.StringIO()
        logs.configure(level="info", stream=out, cache=False)
        logs.register_secret("\u2603")
        logs.register_secret("\u2604\u2603\u2604\u2604")
        logs.get_logger("test").info("secrets", a="x\u2603y", b="<\u2604\u2603\u2604\u2604>")
        (line,) = lines(out)
        assert (line["a"], line["b"]) == ("x[REDACTED]y", "<[REDACTED]>")

    @pytest.mark.parametrize("level", ["debug", "info", "warning", "error"])
    def test_logs_level_filtering(self, level: str) -> None:
        """Only messages at or above the configured level are written."""
        out = io.StringIO()
        logs.configure(level=level, stream=out, cache=False)
        log = logs.get_logger("x")
        log.debug("d")
        log.info("i")
        log.warning("w")
        log.error("e")
        expected = {
            "debug": ["d", "i", "w", "e"],
            "info": ["i", "w", "e"],
            "warning": ["w", "e"],
            "error": ["e"],
        }
        assert [line["event"] for line in lines(out)] == expected[level]
