"""Test helper shared by the exchange suites: one bad frame is a parse error, never a crash or a loss."""

from __future__ import annotations

from typing import Any

import orjson

from collectors.base import Normaliser
from schemas import RecordBuffer


def assert_parse_error_then_flowing(
    normaliser: Normaliser, bad: str | bytes, good: str | bytes, trade_ids: list[str]
) -> None:
    """Feeds ``bad`` then ``good``: exactly one parse_error keeping the frame, and good's trades kept."""
    out = RecordBuffer()
    normaliser.on_frame(1, bad, out)
    normaliser.on_frame(2, good, out)
    assert [e[4] for e in out.feed_events] == ["parse_error"], out.feed_events
    detail = orjson.loads(out.feed_events[0][5])
    assert detail["frame"] and detail["reason"]
    assert [r[4] for r in out.trades] == trade_ids


def events_of(out: RecordBuffer) -> list[tuple[Any, ...]]:
    """Feed events other than ``bad_ts_exchange``: documented message examples are years old, so their
    exchange times are rightly flagged against a present-day receive time; what a test checks is the rest."""
    return [e for e in out.feed_events if e[4] != "bad_ts_exchange"]
