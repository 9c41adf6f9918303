"""A small, bounded protobuf wire-format reader and writer for MEXC's spot push messages.

No code generator and no runtime dependency: only the wire format (varints and length-delimited fields,
https://protobuf.dev/programming-guides/encoding/) and the field numbers of MEXC's published ``.proto``
files (https://github.com/mexcdevelop/websocket-proto, checked 2026-12-05 through a stored copy):

``PushDataV3ApiWrapper``: ``channel`` = 1 (string); ``oneof body``: ``publicAggreDepths`` = 313,
``publicAggreDeals`` = 314, ``publicAggreBookTicker`` = 315 (others, 301..312, are read as unknown);
``symbol`` = 3, ``symbolId`` = 4 (strings); ``createTime`` = 5, ``sendTime`` = 6 (int64).
``PublicAggreDealsV3Api``: ``deals`` = 1 (repeated ``PublicAggreDealsV3ApiItem``), ``eventType`` = 2;
item: ``price`` = 1, ``quantity`` = 2 (strings), ``tradeType`` = 3 (int32), ``time`` = 4 (int64).
``PublicAggreDepthsV3Api``: ``asks`` = 1, ``bids`` = 2 (repeated ``{price = 1, quantity = 2}``),
``eventType`` = 3, ``fromVersion`` = 4, ``toVersion`` = 5 (strings).
``PublicAggreBookTickerV3Api``: ``bidPrice`` = 1, ``bidQuantity`` = 2, ``askPrice`` = 3,
``askQuantity`` = 4 (strings).

Safety. Hostile bytes give a :class:`ParseError`, never an exception of another kind, and the work is
linear in the frame's size: varints are at most 10 bytes, a length must fit in what remains of its
enclosing message, groups (wire types 3/4) and undefined wire types (6/7) are refused, a known field
with the wrong wire type is refused, strings must be UTF-8. Nesting is bounded by the schema, not the
input: only the three known levels (wrapper -> body -> item) are ever descended into; an unknown field
is skipped by its length without being parsed, however deep it claims to nest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from ...events import ParseError

VARINT = 0
I64 = 1
LEN = 2
I32 = 5
_FIXED = {I64: 8, I32: 4}
MAX_VARINT_BYTES = 10
_M = TypeVar("_M")

# field numbers (PushDataV3ApiWrapper)
W_CHANNEL = 1
W_SYMBOL = 3
W_SYMBOL_ID = 4
W_CREATE_TIME = 5
W_SEND_TIME = 6
W_AGGRE_DEPTHS = 313
W_AGGRE_DEALS = 314
W_AGGRE_BOOK_TICKER = 315


def read_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """The varint at ``pos`` (and the position after it); :class:`ParseError` if truncated or too long."""
    result = 0
    shift = 0
    for i in range(MAX_VARINT_BYTES):
        if pos + i >= end:
            raise ParseError("protobuf: truncated varint")
        byte = buf[pos + i]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            if result >= 1 << 64:
                raise ParseError("protobuf: varint above 64 bits")
            return result, pos + i + 1
        shift += 7
    raise ParseError("protobuf: varint longer than 10 bytes")


def fields(buf: bytes, start: int = 0, end: int | None = None) -> list[tuple[int, int, int | bytes]]:
    """The fields of one message as ``(number, wire type, value)``: an int for varints, the bytes of a
    length-delimited field; fixed-width fields are skipped (none is used here)."""
    end = len(buf) if end is None else end
    out: list[tuple[int, int, int | bytes]] = []
    pos = start
    while pos < end:
        key, pos = read_varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0 or number > 536_870_911:
            raise ParseError(f"protobuf: invalid field number {number}")
        if wire == VARINT:
            value, pos = read_varint(buf, pos, end)
            out.append((number, wire, value))
        elif wire == LEN:
            length, pos = read_varint(buf, pos, end)
            if length > end - pos:
                raise ParseError(
                    f"protobuf: field {number} length {length} exceeds the {end - pos} bytes left"
                )
            out.append((number, wire, bytes(buf[pos : pos + length])))
            pos += length
        elif wire in _FIXED:
            size = _FIXED[wire]
            if size > end - pos:
                raise ParseError(f"protobuf: truncated fixed-width field {number}")
            pos += size
        else:
            raise ParseError(f"protobuf: unsupported wire type {wire} (field {number})")
    return out


def _expect(number: int, wire: int, want: int, what: str) -> None:
    if wire != want:
        raise ParseError(f"protobuf: {what} (field {number}) has wire type {wire}, expected {want}")


def _string(value: int | bytes, number: int, wire: int, what: str) -> str:
    _expect(number, wire, LEN, what)
    assert isinstance(value, bytes)
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError(f"protobuf: {what} is not UTF-8") from None


def _int(value: int | bytes, number: int, wire: int, what: str, signed_bits: int = 64) -> int:
    _expect(number, wire, VARINT, what)
    assert isinstance(value, int)
    if value >= 1 << (signed_bits - 1):  # two's complement (negative int32/int64)
        value -= 1 << 64
    return value


@dataclass
class Deal:
    price: str = ""
    quantity: str = ""
    trade_type: int = 0
    time: int = 0


@dataclass
class DepthLevel:
    price: str = ""
    quantity: str = ""


@dataclass
class AggreDeals:
    deals: list[Deal] = field(default_factory=list)
    event_type: str = ""


@dataclass
class AggreDepths:
    asks: list[DepthLevel] = field(default_factory=list)
    bids: list[DepthLevel] = field(default_factory=list)
    event_type: str = ""
    from_version: str = ""
    to_version: str = ""


@dataclass
class AggreBookTicker:
    bid_price: str = ""
    bid_quantity: str = ""
    ask_price: str = ""
    ask_quantity: str = ""


@dataclass
class Push:
    """A decoded ``PushDataV3ApiWrapper`` (proto3: absent scalars are their zero value)."""

    channel: str = ""
    symbol: str = ""
    symbol_id: str = ""
    create_time: int = 0
    send_time: int = 0
    #: which body was set: its field number (313/314/315 decoded; another number for unknown bodies)
    body_field: int = 0
    body: AggreDeals | AggreDepths | AggreBookTicker | None = None


#: The scalar fields of one message: number -> (attribute, documented name, 0 for a string or the
#: integer's signed width). One table serves the reader and the writer.
ScalarFields = dict[int, tuple[str, str, int]]

DEAL_FIELDS: ScalarFields = {
    1: ("price", "deal price", 0),
    2: ("quantity", "deal quantity", 0),
    3: ("trade_type", "deal tradeType", 32),
    4: ("time", "deal time", 64),
}
LEVEL_FIELDS: ScalarFields = {1: ("price", "level price", 0), 2: ("quantity", "level quantity", 0)}
DEALS_FIELDS: ScalarFields = {2: ("event_type", "eventType", 0)}
DEPTHS_FIELDS: ScalarFields = {
    3: ("event_type", "eventType", 0),
    4: ("from_version", "fromVersion", 0),
    5: ("to_version", "toVersion", 0),
}
BOOK_TICKER_FIELDS: ScalarFields = {
    1: ("bid_price", "bidPrice", 0),
    2: ("bid_quantity", "bidQuantity", 0),
    3: ("ask_price", "askPrice", 0),
    4: ("ask_quantity", "askQuantity", 0),
}
PUSH_FIELDS: ScalarFields = {
    W_CHANNEL: ("channel", "channel", 0),
    W_SYMBOL: ("symbol", "symbol", 0),
    W_SYMBOL_ID: ("symbol_id", "symbolId", 0),
    W_CREATE_TIME: ("create_time", "createTime", 64),
    W_SEND_TIME: ("send_time", "sendTime", 64),
}


def _read_scalar(obj: object, spec: ScalarFields, n: int, w: int, v: int | bytes) -> bool:
    """Sets the scalar field ``n`` of ``obj`` if ``spec`` names it; False for any other field."""
    found = spec.get(n)
    if found is None:
        return False
    attr, what, bits = found
    setattr(obj, attr, _string(v, n, w, what) if bits == 0 else _int(v, n, w, what, bits))
    return True


def _message(buf: bytes, spec: ScalarFields, obj: _M) -> _M:
    """A message made only of scalars (unknown fields skipped, as protobuf does)."""
    for n, w, v in fields(buf):
        _read_scalar(obj, spec, n, w, v)
    return obj


def _nested(n: int, w: int, v: int | bytes, what: str) -> bytes:
    _expect(n, w, LEN, what)
    assert isinstance(v, bytes)
    return v


def _deals(buf: bytes) -> AggreDeals:
    body = AggreDeals()
    for n, w, v in fields(buf):
        if n == 1:
            body.deals.append(_message(_nested(n, w, v, "deals"), DEAL_FIELDS, Deal()))
        else:
            _read_scalar(body, DEALS_FIELDS, n, w, v)
    return body


def _depths(buf: bytes) -> AggreDepths:
    body = AggreDepths()
    for n, w, v in fields(buf):
        if n in (1, 2):
            level = _message(_nested(n, w, v, "depth level"), LEVEL_FIELDS, DepthLevel())
            (body.asks if n == 1 else body.bids).append(level)
        else:
            _read_scalar(body, DEPTHS_FIELDS, n, w, v)
    return body


def decode_push(buf: bytes) -> Push:
    """Decodes one ``PushDataV3ApiWrapper``; :class:`ParseError` on anything malformed."""
    push = Push()
    for n, w, v in fields(buf):
        if _read_scalar(push, PUSH_FIELDS, n, w, v):
            continue
        if 301 <= n <= 399:  # the oneof body: the last one on the wire wins, as protobuf says
            data = _nested(n, w, v, "body")
            push.body_field = n
            if n == W_AGGRE_DEALS:
                push.body = _deals(data)
            elif n == W_AGGRE_DEPTHS:
                push.body = _depths(data)
            elif n == W_AGGRE_BOOK_TICKER:
                push.body = _message(data, BOOK_TICKER_FIELDS, AggreBookTicker())
            else:
                push.body = None  # another documented body (klines, tickers...): not decoded
    return push


# -- writer (the simulator, and tests) ------------------------------------------------------------------
def varint(value: int) -> bytes:
    """A varint (negative values as 64-bit two's complement, as protobuf writes int32/int64)."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def f_len(number: int, data: bytes) -> bytes:
    return key(number, LEN) + varint(len(data)) + data


def f_str(number: int, text: str) -> bytes:
    return f_len(number, text.encode()) if text else b""


def f_int(number: int, value: int) -> bytes:
    return key(number, VARINT) + varint(value) if value else b""


def encode_scalars(obj: object, spec: ScalarFields) -> bytes:
    """The scalar fields of ``obj`` in field-number order (zero values omitted, as proto3 writes)."""
    out = b""
    for number in sorted(spec):
        attr, _, bits = spec[number]
        value = getattr(obj, attr)
        out += f_str(number, value) if bits == 0 else f_int(number, value)
    return out


def encode_body(body: AggreDeals | AggreDepths | AggreBookTicker) -> tuple[int, bytes]:
    """The body's oneof field number and its bytes."""
    if isinstance(body, AggreDeals):
        data = b"".join(f_len(1, encode_scalars(d, DEAL_FIELDS)) for d in body.deals)
        return W_AGGRE_DEALS, data + encode_scalars(body, DEALS_FIELDS)
    if isinstance(body, AggreDepths):
        data = b"".join(f_len(1, encode_scalars(a, LEVEL_FIELDS)) for a in body.asks)
        data += b"".join(f_len(2, encode_scalars(b, LEVEL_FIELDS)) for b in body.bids)
        return W_AGGRE_DEPTHS, data + encode_scalars(body, DEPTHS_FIELDS)
    return W_AGGRE_BOOK_TICKER, encode_scalars(body, BOOK_TICKER_FIELDS)


def encode_push(push: Push) -> bytes:
    """Serialises a wrapper in field-number order (what MEXC's generated code writes)."""
    out = encode_scalars(push, PUSH_FIELDS)
    if push.body is not None:
        number, data = encode_body(push.body)
        out += f_len(number, data)
    return out
