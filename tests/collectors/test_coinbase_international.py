"""Coinbase International Exchange (INTX) market data: what is particular to the venue.

There is no recording of INTX in ``../shared/samples``: these tests use the message examples of the
documentation (https://docs.cdp.coinbase.com/international-exchange/websocket-feed/channels and
.../websocket-overview, checked 2026-12-05), with their ``sequence`` renumbered into one session-wide
run as the overview describes (the channel pages number each example from 0, as if each were the only
subscription of its session).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import aiohttp
import orjson
import pytest

from collectors.base import Subscription
from collectors.book import BID
from collectors.capture import replay_capture
from collectors.events import iso_to_ns
from collectors.venues.coinbase_international import (
    CoinbaseInternationalDialect,
    CoinbaseInternationalNormaliser,
    Credentials,
    normalise_product,
    sign,
)
from schemas import RecordBuffer
from tests.collectors.test_connection import running

TS = 1_683_730_800_000_000_000


def run(*messages: dict | str) -> tuple[CoinbaseInternationalNormaliser, RecordBuffer]:
    norm = CoinbaseInternationalNormaliser()
    out = RecordBuffer()
    for i, m in enumerate(messages):
        norm.on_frame(TS + i, m if isinstance(m, str) else orjson.dumps(m), out)
    return norm, out


SUBSCRIBED = {
    "channels": [{"name": "MATCH", "product_ids": ["BTC-PERP"]}],
    "authenticated": True,
    "channel": "SUBSCRIPTIONS",
    "type": "SNAPSHOT",
    "time": "2023-05-30T16:53:46.847Z",
}
L2_SNAPSHOT = {
    "sequence": 0,
    "product_id": "BTC-PERP",
    "time": "2023-05-10T14:58:47.000Z",
    "bids": [["29100", "0.02"], ["28950", "0.01"], ["28900", "0.01"]],
    "asks": [["29267.8", "18"], ["29747.6", "18"], ["30227.4", "9"]],
    "channel": "LEVEL2",
    "type": "SNAPSHOT",
}
L2_UPDATE = {
    "sequence": 1,
    "product_id": "BTC-PERP",
    "time": "2023-05-10T14:58:47.375Z",
    "changes": [["BUY", "28787.7", "6"]],
    "channel": "LEVEL2",
    "type": "UPDATE",
}
MATCH = {
    "sequence": 2,
    "product_id": "BTC-PERP",
    "time": "2023-05-10T14:58:47.002Z",
    "match_id": "177101110052388865",
    "trade_qty": "0.006",
    "aggressor_side": "BUY",
    "trade_price": "28833.1",
    "channel": "MATCH",
    "type": "UPDATE",
}


def test_trades_equal_the_documented_match_field_by_field() -> None:
    sell = {**MATCH, "sequence": 3, "match_id": "177101110052388866", "aggressor_side": "SELL"}
    opening = {**MATCH, "sequence": 4, "match_id": "177101110052388867", "aggressor_side": "OPENING_FILL"}
    _, out = run(SUBSCRIBED, L2_SNAPSHOT, L2_UPDATE, MATCH, sell, opening)
    assert [(t[1], t[2], t[4], t[5], t[6], t[7]) for t in out.trades] == [
        ("BTC-USDC-PERP", iso_to_ns("2023-05-10T14:58:47.002Z"), "177101110052388865", 28833.1, 0.006, "buy"),
        (
            "BTC-USDC-PERP",
            iso_to_ns("2023-05-10T14:58:47.002Z"),
            "177101110052388866",
            28833.1,
            0.006,
            "sell",
        ),
        ("BTC-USDC-PERP", iso_to_ns("2023-05-10T14:58:47.002Z"), "177101110052388867", 28833.1, 0.006, None),
    ]
    assert out.trades[0][2] == 1_683_730_727_002_000_000
    assert not [e for e in out.feed_events if e[4] in ("gap", "parse_error")]


def test_level2_snapshot_then_update_and_level1() -> None:
    level1 = {
        "sequence": 2,
        "product_id": "BTC-PERP",
        "time": "2023-05-10T14:58:47.547Z",
        "bid_price": "28787.8",
        "bid_qty": "0.466",
        "ask_price": "28788.8",
        "ask_qty": "1.566",
        "channel": "LEVEL1",
        "type": "UPDATE",
    }
    one_sided = {
        "sequence": 3,
        "product_id": "BTC-PERP",
        "time": "2023-05-10T14:58:47.000Z",
        "bid_price": "28787.8",
        "bid_qty": "0.466",
        "channel": "LEVEL1",
        "type": "SNAPSHOT",
    }
    norm, out = run(L2_SNAPSHOT, L2_UPDATE, level1, one_sided)
    snap = [r for r in out.book if r[7]]
    assert len(snap) == 6 and all(r[8] == 0 for r in snap)
    upd = [r for r in out.book if not r[7]]
    assert [(r[4], r[5], r[6], r[8], r[2]) for r in upd] == [
        (BID, 28787.7, 6.0, 1, iso_to_ns("2023-05-10T14:58:47.375Z"))
    ]
    assert norm.books["BTC-PERP"].book.best_bid() == (29100.0, 0.02)
    assert [(b[4], b[5], b[6], b[7], b[8]) for b in out.bbo] == [
        (28787.8, 0.466, 28788.8, 1.566, 2),
        (28787.8, 0.466, None, None, 3),
    ]


def test_sequence_is_one_counter_per_session_and_a_jump_resyncs_every_book() -> None:
    eth = {**L2_SNAPSHOT, "sequence": 1, "product_id": "ETH-PERP"}
    btc_update = {**L2_UPDATE, "sequence": 2}
    lost = {**L2_UPDATE, "sequence": 5, "product_id": "ETH-PERP"}  # 3 and 4 never arrived
    norm, out = run(L2_SNAPSHOT, eth, btc_update, {**MATCH, "sequence": 3}, lost)
    gaps = [e for e in out.feed_events if e[4] == "gap"]
    assert sorted(e[1] for e in gaps) == ["BTC-USDC-PERP", "ETH-USDC-PERP"]
    assert orjson.loads(gaps[0][5])["missing"] == 1
    assert norm.resubscribe_requests == {"BTC-PERP", "ETH-PERP"}
    # a repeated number is a duplicate, not a gap
    _, out2 = run(L2_SNAPSHOT, {**L2_UPDATE, "sequence": 0})
    assert [e[4] for e in out2.feed_events] == ["duplicate"]
    # the new snapshot after the resubscription resyncs the book (epoch + 1)
    resnap = {**L2_SNAPSHOT, "sequence": 6}
    out3 = RecordBuffer()
    norm.on_frame(TS + 99, orjson.dumps(resnap), out3)
    assert [e[4] for e in out3.feed_events] == ["resync"]
    assert "BTC-PERP" not in norm.resubscribe_requests


def test_funding_and_risk_values() -> None:
    funding = [
        {
            "sequence": 0,
            "product_id": "BTC-PERP",
            "time": "2023-05-10T14:58:47.000Z",
            "funding_rate": "0.001387",
            "is_final": True,
            "channel": "FUNDING",
            "type": "SNAPSHOT",
        },
        {
            "sequence": 1,
            "product_id": "BTC-PERP",
            "time": "2023-05-10T15:00:00.000Z",
            "funding_rate": "0.001487",
            "is_final": False,
            "channel": "FUNDING",
            "type": "UPDATE",
        },
    ]
    risk = {
        "sequence": 2,
        "product_id": "BTC-PERP",
        "time": "2023-05-10T14:59:17.000Z",
        "limit_up": "31233.9",
        "limit_down": "28259.3",
        "index_price": "28788",
        "mark_price": "29746.6",
        "settlement_price": "29746.6",
        "open_interest": "34",
        "channel": "RISK",
        "type": "UPDATE",
    }
    _, out = run(*funding, risk)
    assert [(f[1], f[2], f[4], f[5]) for f in out.funding] == [
        ("BTC-USDC-PERP", iso_to_ns("2023-05-10T14:58:47.000Z"), 0.001387, None),
        ("BTC-USDC-PERP", iso_to_ns("2023-05-10T15:00:00.000Z"), 0.001387, 0.001487),
    ]
    assert [(m[1], m[2], m[4], m[5]) for m in out.mark_price] == [
        ("BTC-USDC-PERP", iso_to_ns("2023-05-10T14:59:17.000Z"), 29746.6, 28788.0)
    ]
    assert [(o[1], o[4]) for o in out.open_interest] == [("BTC-USDC-PERP", 34.0)]


def test_reject_and_hostile_messages_are_events() -> None:
    _, out = run(
        {"type": "REJECT", "message": "failed", "reason": "authentication failed"},
        {**MATCH, "aggressor_side": "SIDEWAYS"},
        {**MATCH, "product_id": "../../etc", "sequence": 3},
        {**L2_SNAPSHOT, "sequence": 4, "bids": [["NaN", "1"]]},
        {**MATCH, "sequence": 5, "trade_price": "-1"},
        {**MATCH, "sequence": True},
    )
    kinds = [e[4] for e in out.feed_events]
    assert kinds[0] == "subscribe_error"
    assert kinds.count("parse_error") == 5
    assert out.trades == [] and out.book == []


def test_signature_follows_the_documented_prehash_and_secrets_stay_hidden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = base64.b64encode(b"a secret of 32 bytes, not real!!").decode()
    expected = base64.b64encode(
        hmac.new(b"a secret of 32 bytes, not real!!", b"1683730727keyCBINTLMDpass", hashlib.sha256).digest()
    ).decode()
    assert sign("1683730727", "key", "pass", secret) == expected
    creds = Credentials("key", secret, "pass")
    assert secret not in repr(creds) and "pass" not in repr(creds).replace("passphrase", "")
    monkeypatch.setenv("TICKTAPE_COINBASE_INTX_API_KEY", "key")
    monkeypatch.setenv("TICKTAPE_COINBASE_INTX_API_SECRET", secret)
    monkeypatch.setenv("TICKTAPE_COINBASE_INTX_PASSPHRASE", "pass")
    dialect = CoinbaseInternationalDialect()
    [frame] = dialect.subscribe_frames(Subscription(("BTC-PERP",), dialect.channels))
    msg = orjson.loads(frame)
    assert msg["type"] == "SUBSCRIBE" and msg["product_ids"] == ["BTC-PERP"]
    assert msg["channels"] == ["MATCH", "LEVEL2", "LEVEL1", "FUNDING", "RISK"]
    assert msg["signature"] == sign(msg["time"], "key", "pass", secret)
    with pytest.raises(ValueError, match="not base64"):
        sign("1", "k", "p", "***")


async def test_no_credentials_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("API_KEY", "API_SECRET", "PASSPHRASE"):
        monkeypatch.delenv(f"TICKTAPE_COINBASE_INTX_{var}", raising=False)
    dialect = CoinbaseInternationalDialect()
    with pytest.raises(ValueError, match="needs an API key"):
        await dialect.prepare_connection(None, None, dialect.default_ws_url, Subscription(("BTC-PERP",)))  # type: ignore[arg-type]
    for var, value in (("API_KEY", "k"), ("API_SECRET", "not base64!"), ("PASSPHRASE", "p")):
        monkeypatch.setenv(f"TICKTAPE_COINBASE_INTX_{var}", value)
    dialect = CoinbaseInternationalDialect()
    with pytest.raises(ValueError, match="not base64"):
        await dialect.prepare_connection(None, None, dialect.default_ws_url, Subscription(("BTC-PERP",)))  # type: ignore[arg-type]


def test_symbols() -> None:
    assert normalise_product("BTC-PERP") == "BTC-USDC-PERP"
    assert normalise_product("BTC-USDC") == "BTC-USDC"
    assert CoinbaseInternationalDialect().native_symbol("eth-usdc-perp") == "ETH-PERP"


async def test_live_capture_holds_no_secret_and_a_bad_signature_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = base64.b64encode(b"x" * 32).decode()
    monkeypatch.setenv("TICKTAPE_COINBASE_INTX_API_KEY", "k3y-visible")
    monkeypatch.setenv("TICKTAPE_COINBASE_INTX_API_SECRET", secret)
    monkeypatch.setenv("TICKTAPE_COINBASE_INTX_PASSPHRASE", "pass-phrase-1")
    capture = tmp_path / "intx.capture"
    async with running("coinbase-international", ("BTC-PERP", "ETH-PERP"), capture=capture) as run:
        await run.until(
            lambda: run.count("trades", "BTC-USDC-PERP") > 2 and run.count("funding", "ETH-USDC-PERP") > 0
        )
        # a client with the wrong secret is refused and disconnected
        async with aiohttp.ClientSession() as http, http.ws_connect(run.sim.ws_url + "/") as ws:
            bad = {"type": "SUBSCRIBE", "product_ids": ["BTC-PERP"], "channels": ["MATCH"]}
            bad.update(
                Credentials(
                    "k3y-visible", base64.b64encode(b"y" * 32).decode(), "pass-phrase-1"
                ).auth_fields()
            )
            await ws.send_str(orjson.dumps(bad).decode())
            reply = await ws.receive(timeout=5)
            assert orjson.loads(reply.data)["type"] == "REJECT"
    text = capture.read_bytes()
    assert b"k3y-visible" not in text and secret.encode() not in text and b"pass-phrase-1" not in text
    assert b'"channel":"MATCH"' in text
    replayed = replay_capture(CoinbaseInternationalNormaliser(), capture)
    assert replayed.trades == run.got.trades and replayed.funding == run.got.funding
