"""The wire encoding of records on Kafka and Kinesis (specified in ``schemas/README.md``).

A message value is one or more Avro *single-object encodings* (Avro spec 1.11) placed back to back::

    C3 01 | CRC-64-AVRO fingerprint of the schema's Parsing Canonical Form, 8 bytes little-endian | body

so that any client holding fastavro and the ``.avsc`` files can decode it: read the 10-byte header,
pick the schema by fingerprint, ``fastavro.schemaless_reader`` the body, repeat until the value ends.

Encoding is on the collector's hot path, and fastavro's generic writer costs several microseconds per
record from Python row tuples. This module therefore generates, once per dataset, a specialised
encoder and decoder from the ``.avsc`` field list (the schemas use only string, long, int, double,
boolean, bytes and ``[null, T]`` unions). Tests check both directions against fastavro.

Those generated functions are the reference. A compiled codec, ``streaming._avronative`` (C, built
by ``make install``: ``setup.py``), takes the common case faster: whole batches of rows encoded and
grouped per key in one call (:func:`encode_keyed`), and message values decoded straight into Arrow
column buffers (:func:`consume_values`), without a Python object per row. It refuses whatever is
unusual (a value of an unexpected Python type, a malformed message, a number that does not fit its
column) and the reference then handles exactly that input, so both give the same bytes, rows and
errors (tests/streaming/test_native_codec.py). ``TICKTAPE_PURE_PYTHON=1`` in the environment selects
the reference alone; so does a failed build (:func:`native_status` says which).

The same module builds Arrow columns from row tuples (:func:`rows_to_batch`, which
``schemas.rows_to_arrow`` tries first; the reference is ``schemas.python_rows_to_arrow``) and orders
rows for the lake (:func:`lake_order`, for ``storage.lake.sort_for_lake``), with the same rule: plain
input in C, anything else to the reference (tests/schemas/test_native_arrow.py).
"""

from __future__ import annotations

import base64
import collections
import importlib
import importlib.util
import itertools
import os
import re
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from types import ModuleType
from typing import Any

import orjson
import pyarrow as pa

from schemas import DATASETS, arrow_schema, avro_schema, base_width, field_names, rows_to_arrow
from streaming.base import ConsumedBatch

#: The two marker bytes that start every single-object encoding.
MAGIC = b"\xc3\x01"
#: Length of the per-record header (marker + fingerprint).
HEADER_BYTES = 10

Row = tuple[Any, ...]
Encoder = Callable[[Row], bytes]
# A decoder reads one body from ``buf`` at ``pos`` and returns the row and the position after it.
Decoder = Callable[[bytes, int], tuple[Row, int]]


class CodecError(ValueError):
    """A row that does not fit its schema, or a message value that is not valid ticktape Avro."""


# ---------------------------------------------------------------------------------------------------
# Schema identity


_CRC64_EMPTY = 0xC15D213AA4D7A795


def _crc64_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_CRC64_EMPTY & -(fp & 1))
        table.append(fp)
    return table


_CRC64_TABLE = _crc64_table()


def crc64_avro(data: bytes) -> int:
    """The CRC-64-AVRO (Rabin) fingerprint of ``data``, as the Avro specification defines it."""
    fp = _CRC64_EMPTY
    for b in data:
        fp = (fp >> 8) ^ _CRC64_TABLE[(fp ^ b) & 0xFF]
    return fp


def _canonical_type(t: Any) -> Any:
    if isinstance(t, list):
        return [_canonical_type(x) for x in t]
    if isinstance(t, dict):
        # Only primitive types in {"type": ...} wrappers occur in our schemas.
        if set(t) - {"type", "doc", "default", "logicalType"}:
            raise CodecError(f"unsupported type in schema: {t!r}")
        return _canonical_type(t["type"])
    return t


def _json_str(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _fields(dataset: str, base: bool) -> list[dict[str, Any]]:
    """The schema's fields; ``base``: without the trailing ``replica`` (schemas.base_width)."""
    fields: list[dict[str, Any]] = avro_schema(dataset)["fields"]
    return fields[: base_width(dataset)] if base else fields


@cache
def canonical_form(dataset: str, base: bool = False) -> str:
    """The Avro Parsing Canonical Form of a dataset's schema (what the fingerprint is taken over).

    ``base``: the form of the schema without its trailing ``replica`` field, which records without a
    replica are written with (byte for byte what ticktape wrote before the field existed)."""
    schema = avro_schema(dataset)
    name = schema["name"]
    if "namespace" in schema and "." not in name:
        name = f"{schema['namespace']}.{name}"
    fields = ",".join(
        '{"name":' + _json_str(f["name"]) + ',"type":' + _json_str(_canonical_type(f["type"])) + "}"
        for f in _fields(dataset, base)
    )
    return '{"name":' + _json_str(name) + ',"type":"record","fields":[' + fields + "]}"


@cache
def fingerprint(dataset: str, base: bool = False) -> int:
    """The CRC-64-AVRO fingerprint of a dataset's schema (as an unsigned 64-bit integer)."""
    return crc64_avro(canonical_form(dataset, base).encode())


@cache
def header(dataset: str, base: bool = False) -> bytes:
    """The 10-byte single-object header of a dataset: ``C3 01`` + fingerprint little-endian
    (``base``: of the schema without ``replica``)."""
    return MAGIC + struct.pack("<Q", fingerprint(dataset, base))


# ---------------------------------------------------------------------------------------------------
# The compiled codec

#: Environment variable that selects the pure-Python codecs (the reference) everywhere.
PURE_PYTHON_ENV = "TICKTAPE_PURE_PYTHON"
#: Loads the compiled codec from this file instead (the AddressSanitizer build of ``make asan-codec``).
NATIVE_PATH_ENV = "TICKTAPE_AVRONATIVE_SO"
_NATIVE: list[ModuleType | None] = [None]
_NATIVE_STATUS = ["not loaded"]
_AVRO_TYPE_CODES = {"string": 1, "bytes": 2, "long": 3, "int": 4, "double": 5, "boolean": 6}
_NULLABLE_CODE = 0x10


def load_native_module() -> ModuleType:
    """The compiled codec module (from :data:`NATIVE_PATH_ENV` when set), whatever
    :data:`PURE_PYTHON_ENV` says; raises ``ImportError`` when it is not built."""
    path = os.environ.get(NATIVE_PATH_ENV)
    if not path:
        return importlib.import_module("streaming._avronative")
    spec = importlib.util.spec_from_file_location("streaming._avronative", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load_native() -> ModuleType | None:
    if os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0"):
        _NATIVE_STATUS[0] = f"pure Python: {PURE_PYTHON_ENV} is set"
        return None
    try:
        module = load_native_module()
    except ImportError as exc:
        _NATIVE_STATUS[0] = f"pure Python: the compiled codec is not available ({exc}); run make install"
        return None
    _NATIVE_STATUS[0] = f"compiled: {module.__file__}"
    return module


_NATIVE[0] = _load_native()


def _native() -> ModuleType | None:
    return _NATIVE[0]


def native_status() -> str:
    """Which codec runs: ``compiled: <file>`` or ``pure Python: <why>``."""
    return _NATIVE_STATUS[0]


def field_codes(dataset: str) -> bytes:
    """The field codes of a dataset's schema, one byte per field (the compiled codec's and
    ``collectors._booknative.ColumnRows``' spec): the Avro type (string 1, bytes 2, long 3, int 4,
    double 5, boolean 6), with 0x10 set for a nullable field."""
    return _spec(dataset)


@cache
def _spec(dataset: str, base: bool = False) -> bytes:
    """The field codes of a dataset for the compiled codec (one byte per field; ``base``: of the
    schema without ``replica``)."""
    codes = []
    for f in _fields(dataset, base):
        avro_type, nullable = _field_type(f["type"])
        if avro_type not in _AVRO_TYPE_CODES:
            raise CodecError(f"field {f['name']}: unsupported Avro type {avro_type!r}")
        codes.append(_AVRO_TYPE_CODES[avro_type] | (_NULLABLE_CODE if nullable else 0))
    return bytes(codes)


# ---------------------------------------------------------------------------------------------------
# Primitive encodings (Avro binary encoding)


def _varint(z: int) -> bytes:
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


# zigzag(n) for small n is the common case (flags, epoch, short strings): precomputed.
_SMALL = [_varint(z) for z in range(256)]
_LONG_CACHE: dict[int, bytes] = {}
_STR_CACHE: dict[str, bytes] = {}
_CACHE_LIMIT = 1 << 16
_MIN_LONG = -(1 << 63)
_MAX_LONG = (1 << 63) - 1


def _long(n: int) -> bytes:
    """Zigzag varint of a long. Timestamps and sequence numbers repeat across the rows of one frame,
    so encodings are memoised (bounded)."""
    if n.__class__ is not int and (n.__class__ is bool or not isinstance(n, int)):
        _bad_long(n)
    b = _LONG_CACHE.get(n)
    if b is not None:
        return b
    if not _MIN_LONG <= n <= _MAX_LONG:
        raise CodecError(f"integer out of the Avro long range: {n}")
    z = (n << 1) ^ (n >> 63)
    b = _SMALL[z] if z < 256 else _varint(z)
    if len(_LONG_CACHE) >= _CACHE_LIMIT:
        _LONG_CACHE.clear()
    _LONG_CACHE[n] = b
    return b


def _str(s: str) -> bytes:
    """Length-prefixed UTF-8, memoised for the low-cardinality strings (exchange, symbol, side, ...)."""
    b = _STR_CACHE.get(s)
    if b is not None:
        return b
    data = s.encode()
    b = _long(len(data)) + data
    if len(_STR_CACHE) >= _CACHE_LIMIT:
        _STR_CACHE.clear()
    _STR_CACHE[s] = b
    return b


def _bad_bool(v: Any) -> bytes:
    raise CodecError(f"not a boolean: {v!r}")


def _bad_long(v: Any) -> bytes:
    raise CodecError(f"not an integer: {str(v)[:40]!r} ({type(v).__name__})")


def _bytes(b: bytes) -> bytes:
    """Length-prefixed bytes (the raw archive's compressed blobs)."""
    if not isinstance(b, bytes | bytearray | memoryview):
        raise CodecError(f"not bytes: {type(b).__name__}")
    return _long(len(b)) + bytes(b)


def _str_once(s: str) -> bytes:
    """Length-prefixed UTF-8 for high-cardinality strings (trade ids, event details): not memoised."""
    data = s.encode()
    n = len(data)
    return (_SMALL[n << 1] if n < 128 else _long(n)) + data


_DOUBLE = struct.Struct("<d")
_pack_double = _DOUBLE.pack
_unpack_double = _DOUBLE.unpack_from

# Fields whose values repeat a lot; every other string is encoded without the memo.
_MEMO_STRINGS = frozenset({"exchange", "symbol", "side", "channel", "kind", "state"})


def _field_type(t: Any) -> tuple[str, bool]:
    t = _canonical_type(t)
    if isinstance(t, list):
        non_null = [x for x in t if x != "null"]
        if len(non_null) != 1 or len(t) != 2 or t[0] != "null":
            raise CodecError(f"only ['null', T] unions are supported, got {t!r}")
        return non_null[0], True
    return t, False


# Expression templates producing the bytes of a value ``v`` of each Avro type.
# Memo hits are looked up inline (no call), misses fall back to the function.
_ENCODE_EXPR = {
    # The memo is keyed by value, and True == 1 == 1.0: anything but a plain int goes to _long, which
    # refuses booleans and non-integers (a bool or float never takes the memo's encoding of 1).
    "long": "((_LC({v}) if {v}.__class__ is int else _long({v})) or _long({v}))",
    "int": "((_LC({v}) if {v}.__class__ is int else _long({v})) or _long({v}))",
    "double": "_pack_double({v})",
    "bytes": "_bytes({v})",
    "boolean": "(b'\\x01' if {v} is True else b'\\x00' if {v} is False else _bad_bool({v}))",
}


def _encode_expr(name: str, avro_type: str, v: str) -> str:
    if avro_type == "string":
        return f"(_SC({v}) or _str({v}))" if name in _MEMO_STRINGS else f"_str_once({v})"
    if avro_type not in _ENCODE_EXPR:
        raise CodecError(f"field {name}: unsupported Avro type {avro_type!r}")
    return _ENCODE_EXPR[avro_type].format(v=v)


def _encode_body(fields: list[dict[str, Any]], header_name: str) -> tuple[list[str], str]:
    """Generated ``(names, expression)`` encoding one row of ``fields`` after a header."""
    names = [f"v{i}" for i in range(len(fields))]
    parts = [header_name]
    for f, v in zip(fields, names, strict=True):
        avro_type, nullable = _field_type(f["type"])
        expr = _encode_expr(f["name"], avro_type, v)
        if nullable:
            # Union branch 0 is null (zigzag 0 = 0x00), branch 1 is the value (zigzag 1 = 0x02).
            expr = f"(b'\\x00' if {v} is None else b'\\x02' + {expr})"
        parts.append(expr)
    return names, f"b''.join(({', '.join(parts)}))"


@cache
def python_encoder(dataset: str) -> Encoder:
    """The reference encoder: one row tuple (schema field order) -> a single-object encoding.

    A row of the base width (no ``replica``: what a single collector publishes) is written with the
    base schema's header, byte for byte as before the field existed, so that consumers that know only
    that schema keep reading single-collector data; a full row (a replica's) with the full schema."""
    fields = avro_schema(dataset)["fields"]
    width = base_width(dataset)
    full_names, full_expr = _encode_body(fields, "_HEADER")
    if width == len(fields):
        src = f"def encode(row):\n    {', '.join(full_names)}, = row\n    return {full_expr}\n"
    else:
        base_names, base_expr = _encode_body(fields[:width], "_BASE_HEADER")
        src = (
            "def encode(row):\n"
            f"    if len(row) == {width}:\n"
            f"        {', '.join(base_names)}, = row\n"
            f"        return {base_expr}\n"
            f"    {', '.join(full_names)}, = row\n"
            f"    return {full_expr}\n"
        )
    namespace: dict[str, Any] = {
        "_HEADER": header(dataset),
        "_BASE_HEADER": header(dataset, True),
        "_long": _long,
        "_str": _str,
        "_str_once": _str_once,
        "_bytes": _bytes,
        "_pack_double": _pack_double,
        "_bad_bool": _bad_bool,
        "_LC": _LONG_CACHE.get,
        "_SC": _STR_CACHE.get,
    }
    exec(compile(src, f"<ticktape encoder {dataset}>", "exec"), namespace)
    fast: Encoder = namespace["encode"]
    names = [f["name"] for f in fields]

    def encode(row: Row) -> bytes:
        try:
            return fast(row)
        except CodecError:
            raise
        except (TypeError, ValueError, AttributeError, OverflowError, struct.error) as exc:
            raise CodecError(
                f"{dataset} row does not fit the schema ({exc}): {_row_repr(names, row)}"
            ) from None

    return encode


@cache
def encoder(dataset: str) -> Encoder:
    """A function that encodes one row tuple (schema field order) as a single-object encoding: the
    compiled codec, which hands any row it does not take to :func:`python_encoder`."""
    reference = python_encoder(dataset)
    native = _native()
    if native is None:
        return reference
    native_row = native.encode_row
    spec, head = _spec(dataset), header(dataset)
    width = base_width(dataset)
    base_spec, base_head = _spec(dataset, True), header(dataset, True)

    def encode(row: Row) -> bytes:
        # a row without the replica (a single collector's) is written with the base schema
        if len(row) == width:
            data: bytes | None = native_row(base_spec, base_head, row)
        else:
            data = native_row(spec, head, row)
        return reference(row) if data is None else data

    return encode


def _row_repr(names: Sequence[str], row: Any) -> str:
    try:
        return repr(dict(zip(names, row, strict=True)))[:400]
    except (TypeError, ValueError):
        return repr(row)[:400]


def encode_rows(dataset: str, rows: Iterable[Row]) -> bytes:
    """Encodes rows of one dataset as one message value (single-object encodings back to back)."""
    native = _native()
    shape = _native_shape(rows) if native is not None else None
    if native is not None and shape is not None:
        data: bytes | None = native.encode_batch(*_native_schema(dataset, shape), *shape)
        if data is not None:
            return data
    return b"".join(map(encoder(dataset), rows))


def _native_shape(rows: Any) -> tuple[Any, bool] | None:
    """What the compiled encoders take: a list of row tuples ``(rows, False)``, or the columns of a
    record buffer that holds them (``rows.cols``: one list per field, ``(cols, True)``); None else."""
    if rows.__class__ is list:
        return rows, False
    cols = getattr(rows, "cols", None)
    if cols.__class__ is tuple:
        return cols, True
    return None


def _native_schema(dataset: str, shape: tuple[Any, bool]) -> tuple[bytes, bytes]:
    """The field codes and header the compiled encoders use for these rows: the base schema's when
    they have its width (no ``replica``), else the full schema's. Rows of mixed widths do not fit
    either: the compiled encoder refuses them and the reference encodes each row by its width."""
    data, columnar = shape
    width = len(data) if columnar else (len(data[0]) if data else 0)
    base = width == base_width(dataset)
    return _spec(dataset, base), header(dataset, base)


def python_encode_rows(dataset: str, rows: Iterable[Row]) -> bytes:
    """:func:`encode_rows` with the reference encoder."""
    return b"".join(map(python_encoder(dataset), rows))


@cache
def ts_recv_field(dataset: str) -> int:
    """Where a dataset's rows hold ``ts_recv`` (what a publisher's delivery listener gets of each row):
    field 3 of every dataset but ``instruments`` (its receive time comes after the instrument's terms)."""
    return field_names(dataset).index("ts_recv")


def encode_keyed(
    dataset: str, rows: Sequence[Row], max_bytes: int, ts_recv: bool = False
) -> list[tuple[bytes, bytes, int, tuple[int, ...] | None]] | None:
    """The Kafka messages of one dataset's rows, in one compiled call: ``[(key, value, rows, ts)]``.

    Rows are grouped by the key ``exchange|symbol`` (keys in order of first appearance, rows in order
    within a key), and each key's encodings are packed into values of at most ``max_bytes`` (a record
    never splits). ``ts`` is the tuple of the value's ``ts_recv`` when asked for, else None.
    ``rows`` is a list of row tuples, or a record buffer's columns (an object with ``cols``, one list
    per field). Returns None without the compiled codec, for other sequences, or when a row is not of
    the expected Python types: the caller then encodes the rows one by one with :func:`encoder`
    (which reports the bad rows).
    """
    native = _native()
    shape = _native_shape(rows) if native is not None else None
    if native is None or shape is None:
        return None
    parts: list[tuple[bytes, bytes, int, tuple[int, ...] | None]] | None = native.encode_keyed(
        *_native_schema(dataset, shape), *shape, max_bytes, ts_recv_field(dataset) if ts_recv else -1
    )
    return parts


# ---------------------------------------------------------------------------------------------------
# Decoding


def _varint_tail(buf: bytes, pos: int, first: int) -> tuple[int, int]:
    """Rest of a varint whose first byte ``first`` (already consumed) had the continuation bit."""
    z = first & 0x7F
    shift = 7
    while True:
        b = buf[pos]
        pos += 1
        z |= (b & 0x7F) << shift
        if b < 0x80:
            return z, pos
        shift += 7
        if shift > 63:
            raise CodecError("varint longer than 10 bytes")


# A varint is up to 9 bytes with the continuation bit and one without (10 in all for a long).
_varint_end = re.compile(rb"[\x80-\xff]{0,9}[\x00-\x7f]").match
_RAW_LONG_CACHE: dict[bytes, int] = {}


def _long_of_raw(raw: bytes) -> int:
    """The long a multi-byte zigzag varint encodes (memoised: timestamps and sequence numbers repeat
    across the rows of a frame, and a dict hit is far cheaper than the bit loop)."""
    z = 0
    for shift, b in enumerate(raw):
        z |= (b & 0x7F) << (7 * shift)
    value = (z >> 1) ^ -(z & 1)
    if len(_RAW_LONG_CACHE) >= _CACHE_LIMIT:
        _RAW_LONG_CACHE.clear()
    _RAW_LONG_CACHE[raw] = value
    return value


def _decode_lines(name: str, avro_type: str, v: str, indent: str) -> list[str]:
    """Generated statements reading one value into ``v`` (varints inlined: the 1-byte case is common)."""
    varint = [
        "b = buf[pos]",
        "pos += 1",
        "if b < 0x80:",
        "    z = b",
        "else:",
        "    z, pos = _varint_tail(buf, pos, b)",
    ]
    if avro_type in ("long", "int"):
        lines = [
            "b = buf[pos]",
            "if b < 0x80:",
            f"    {v} = (b >> 1) ^ -(b & 1)",
            "    pos += 1",
            "else:",
            "    m = _varint_end(buf, pos)",
            "    if m is None:",
            f"        raise CodecError('{name}: truncated or overlong varint')",
            "    e = m.end()",
            "    raw = buf[pos:e]",
            f"    {v} = _RLC(raw)",
            f"    if {v} is None:",
            f"        {v} = _long_of_raw(raw)",
            "    pos = e",
        ]
    elif avro_type == "string":
        lines = [
            *varint,
            "n = (z >> 1) ^ -(z & 1)",
            "e = pos + n",
            "if n < 0 or e > len(buf):",
            f"    raise CodecError('{name}: string runs past the end of the message')",
            f"{v} = buf[pos:e].decode()",
            "pos = e",
        ]
    elif avro_type == "bytes":
        lines = [
            *varint,
            "n = (z >> 1) ^ -(z & 1)",
            "e = pos + n",
            "if n < 0 or e > len(buf):",
            f"    raise CodecError('{name}: bytes run past the end of the message')",
            f"{v} = bytes(buf[pos:e])",
            "pos = e",
        ]
    elif avro_type == "double":
        lines = [f"{v}, = _unpack_double(buf, pos)", "pos += 8"]
    elif avro_type == "boolean":
        lines = [
            "b = buf[pos]",
            "pos += 1",
            "if b > 1:",
            f"    raise CodecError('{name}: invalid boolean byte')",
            f"{v} = b == 1",
        ]
    else:
        raise CodecError(f"field {name}: unsupported Avro type {avro_type!r}")
    return [indent + line for line in lines]


@cache
def decoder(dataset: str, base: bool = False) -> Decoder:
    """A function ``(buf, pos) -> (row, new_pos)`` that reads one body of ``dataset`` (``base``: one
    written without ``replica``; its row has the base width)."""
    fields = _fields(dataset, base)
    lines = ["def decode(buf, pos):"]
    names = []
    for i, f in enumerate(fields):
        avro_type, nullable = _field_type(f["type"])
        v = f"v{i}"
        names.append(v)
        if nullable:
            lines += [
                "    branch = buf[pos]",
                "    pos += 1",
                "    if branch == 0:",
                f"        {v} = None",
                "    elif branch == 2:",
                *_decode_lines(f["name"], avro_type, v, "        "),
                "    else:",
                f"        raise CodecError('{f['name']}: invalid union branch')",
            ]
        else:
            lines += _decode_lines(f["name"], avro_type, v, "    ")
    lines.append(f"    return ({', '.join(names)},), pos")
    namespace: dict[str, Any] = {
        "_varint_tail": _varint_tail,
        "_varint_end": _varint_end,
        "_RLC": _RAW_LONG_CACHE.get,
        "_long_of_raw": _long_of_raw,
        "_unpack_double": _unpack_double,
        "CodecError": CodecError,
    }
    exec(compile("\n".join(lines) + "\n", f"<ticktape decoder {dataset}>", "exec"), namespace)
    fn: Decoder = namespace["decode"]
    return fn


@cache
def _by_header() -> dict[bytes, tuple[str, Decoder]]:
    table = {header(d, True): (d, decoder(d, True)) for d in DATASETS}
    table.update({header(d): (d, decoder(d)) for d in DATASETS})
    return table


def dataset_of_header(value: bytes, pos: int = 0) -> str:
    """The dataset whose single-object header starts at ``pos`` (raises :class:`CodecError`)."""
    entry = _by_header().get(bytes(value[pos : pos + HEADER_BYTES]))
    if entry is None:
        raise CodecError(f"no ticktape schema with header {bytes(value[pos : pos + HEADER_BYTES]).hex()}")
    return entry[0]


def decode(value: bytes) -> list[tuple[str, Row]]:
    """Decodes a message value into ``(dataset, row)`` pairs, in order.

    Raises :class:`CodecError` if any part of the value is not a valid encoding; the value is then
    rejected as a whole (never partially trusted).
    """
    buf = bytes(value)
    table = _by_header()
    out: list[tuple[str, Row]] = []
    pos = 0
    end = len(buf)
    if end == 0:
        raise CodecError("empty message value")
    while pos < end:
        entry = table.get(buf[pos : pos + HEADER_BYTES])
        if entry is None:
            raise CodecError(
                f"no ticktape schema with header {buf[pos : pos + HEADER_BYTES].hex()} at byte {pos}"
            )
        dataset, fn = entry
        try:
            row, pos = fn(buf, pos + HEADER_BYTES)
        except (IndexError, UnicodeDecodeError, struct.error) as exc:
            raise CodecError(f"truncated or corrupt {dataset} record at byte {pos}: {exc}") from None
        if pos > end:
            raise CodecError(f"{dataset} record runs past the end of the message")
        out.append((dataset, row))
    return out


def decode_message(value: bytes) -> tuple[str, list[Row]]:
    """Decodes a ticktape message value: records of one dataset (raises :class:`CodecError` otherwise).

    Every message ticktape writes holds one dataset, which lets a consumer give each message's
    position to exactly one dataset's batch. This is the consumers' hot path: one header lookup,
    then a bytes comparison per record.
    """
    buf = bytes(value)
    end = len(buf)
    if end == 0:
        raise CodecError("empty message value")
    head = buf[:HEADER_BYTES]
    entry = _by_header().get(head)
    if entry is None:
        raise CodecError(f"no ticktape schema with header {head.hex()} at byte 0")
    dataset, fn = entry
    rows: list[Row] = []
    append = rows.append
    pos = 0
    try:
        while pos < end:
            if buf[pos : pos + HEADER_BYTES] != head:
                other = _by_header().get(buf[pos : pos + HEADER_BYTES])
                if other is not None and other[0] != dataset:
                    raise CodecError(f"message mixes datasets ({dataset} and {other[0]})")
                if other is None:
                    found = buf[pos : pos + HEADER_BYTES].hex()
                    raise CodecError(f"no ticktape schema with header {found} at byte {pos}")
                # the same dataset with and without a replica (rows of both widths in one value)
                row, pos = other[1](buf, pos + HEADER_BYTES)
                append(row)
                continue
            row, pos = fn(buf, pos + HEADER_BYTES)
            append(row)
    except (IndexError, UnicodeDecodeError, struct.error) as exc:
        raise CodecError(f"truncated or corrupt {dataset} record at byte {pos}: {exc}") from None
    if pos > end:
        raise CodecError(f"{dataset} record runs past the end of the message")
    return dataset, rows


#: Message bytes per compiled decoding call: a column's string data stays far below Arrow's 2 GiB.
_DECODE_CALL_BYTES = 256 << 20


def decode_columns(dataset: str, values: Sequence[bytes]) -> tuple[pa.Table, list[int]]:
    """Compiled decoding of message values of one dataset straight to Arrow columns.

    Returns the rows of every value it took, as one table in value order, and the number of rows of
    each value; -1 marks a value it did not take (malformed, another dataset's records, or a number
    that does not fit its column): decode that one with :func:`decode_message`. Values written
    without ``replica`` (the base schema: single collectors) and with it (replicas) are decoded by
    their own schema and come out with the full schema's columns (``replica`` null for the former).
    Requires the compiled codec (see :func:`native_status`).
    """
    base_head = header(dataset, True)
    is_base = [v[:HEADER_BYTES] == base_head for v in values]
    if all(is_base) or not any(is_base):
        return _decode_columns(dataset, values, bool(values) and is_base[0])
    parts = {b: [i for i, f in enumerate(is_base) if f == b] for b in (True, False)}
    decoded = {b: _decode_columns(dataset, [values[i] for i in idx], b) for b, idx in parts.items()}
    slot: list[tuple[bool, int]] = [(False, 0)] * len(values)
    for b, idx in parts.items():
        for k, i in enumerate(idx):
            slot[i] = (b, k)
    offsets = {b: list(itertools.accumulate((max(c, 0) for c in decoded[b][1]), initial=0)) for b in parts}
    counts = [decoded[b][1][k] for b, k in slot]
    pieces = [decoded[b][0].slice(offsets[b][k], max(decoded[b][1][k], 0)) for b, k in slot]
    return pa.concat_tables(pieces) if pieces else arrow_schema(dataset).empty_table(), counts


def _decode_columns(dataset: str, values: Sequence[bytes], base: bool) -> tuple[pa.Table, list[int]]:
    """:func:`decode_columns` of values that all carry one schema's header (``base``: without replica)."""
    native = _native()
    if native is None:
        raise RuntimeError(f"decode_columns needs the compiled codec ({native_status()})")
    spec, head = _spec(dataset, base), header(dataset, base)
    tables: list[pa.Table] = []
    counts: list[int] = []
    start = 0
    while start < len(values) or not tables:
        stop, size = start, 0
        while stop < len(values) and (stop == start or size + len(values[stop]) <= _DECODE_CALL_BYTES):
            size += len(values[stop])
            stop += 1
        n, part_counts, columns = native.decode_values(spec, head, values[start:stop])
        tables.append(_columns_table(dataset, n, columns))
        counts.extend(part_counts)
        start = stop
    return (tables[0] if len(tables) == 1 else pa.concat_tables(tables)), counts


def _columns_table(dataset: str, n: int, columns: list[tuple[Any, ...]]) -> pa.Table:
    """A table of ``dataset`` from the compiled decoder's buffers (no copy, no Python object per row);
    values written without ``replica`` (base schema: fewer columns) get an all-null one."""
    return pa.Table.from_arrays(_column_arrays(dataset, n, columns), schema=arrow_schema(dataset))


def _column_arrays(dataset: str, n: int, columns: list[tuple[Any, ...]]) -> list[pa.Array]:
    """The arrays of ``dataset``'s columns over the compiled codec's buffers (see :func:`_columns_table`)."""
    types = _arrow_types(dataset)
    arrays = []
    for typ, (valid, offsets, data, nulls) in zip(types, columns, strict=False):
        buffers = [None if valid is None else pa.py_buffer(valid)]
        if offsets is not None:
            buffers.append(pa.py_buffer(offsets))
        buffers.append(pa.py_buffer(data))
        arrays.append(pa.Array.from_buffers(typ, n, buffers, null_count=nulls))
    arrays.extend(pa.nulls(n, typ) for typ in types[len(columns) :])
    return arrays


@cache
def _arrow_types(dataset: str) -> tuple[pa.DataType, ...]:
    """The column types of ``dataset`` (a schema's fields are new Python objects at each access)."""
    return tuple(f.type for f in arrow_schema(dataset))


def rows_to_batch(dataset: str, rows: list[Row]) -> pa.RecordBatch | None:
    """Compiled ``schemas.rows_to_arrow``: row tuples (base or full width, mixed) to a record batch in
    one pass, or None when the compiled codec is not in use or does not take a row or a value (a
    value not exactly of its column's type, an integer out of its column's range, a str that is not
    UTF-8, a row not a tuple of either width): then ``schemas.python_rows_to_arrow`` decides."""
    native = _native()
    if native is None:
        return None
    if type(rows) is not list:
        # rows held as columns (collectors.base.new_record_buffer): their buffers as they are, or,
        # once the store became a list, its rows as any list's; other sequences are not taken
        to_columns = getattr(rows, "to_columns", None)
        if to_columns is None:
            return None
        got = to_columns()
        if got is not None:
            n, columns = got
            return pa.RecordBatch.from_arrays(
                _column_arrays(dataset, n, columns), schema=arrow_schema(dataset)
            )
        rows = list(rows)
    got = native.rows_to_columns(_spec(dataset), base_width(dataset), rows)
    if got is None:
        return None
    n, columns = got
    return pa.RecordBatch.from_arrays(_column_arrays(dataset, n, columns), schema=arrow_schema(dataset))


def lake_order(table: pa.Table | pa.RecordBatch) -> tuple[bool, pa.Array | None]:
    """Compiled order of rows by (symbol, ts_recv), stable (``storage.lake.sort_for_lake``):
    ``(True, row numbers)``, ``(True, None)`` when the rows are in that order already, or
    ``(False, None)`` when it is not taken (no compiled codec, no such columns, a null in either):
    then the reference sorts. The row numbers are those ``pyarrow.compute.sort_indices`` gives for
    those keys; distinct symbols are ranked once, each symbol's rows are merged by ts_recv only where
    they are not in order already (a replay unit spanning repeated captures is a few such runs)."""
    native = _native()
    names = table.schema.names
    if native is None or "symbol" not in names or "ts_recv" not in names:
        return False, None
    sym, ts = table.column("symbol"), table.column("ts_recv")
    if not pa.types.is_string(sym.type) or not (pa.types.is_int64(ts.type) or pa.types.is_timestamp(ts.type)):
        return False, None
    if sym.null_count or ts.null_count:
        return False, None
    if len(sym) < 2:
        return True, None
    if isinstance(sym, pa.ChunkedArray):
        sym = sym.combine_chunks()
    if isinstance(ts, pa.ChunkedArray):
        ts = ts.combine_chunks()
    n = len(sym)
    _, offsets, data = sym.buffers()
    order = native.lake_order(
        n, offsets, data if data is not None else b"", ts.buffers()[1], sym.offset, ts.offset
    )
    if order is None:
        return True, None
    return True, pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(order)])


#: One message read from a stream: (position, key, value).
Message = tuple[int, bytes | str | None, bytes | None]
#: Called for a message that does not decode, with its index and the error: the event row to store.
ErrorRow = Callable[[int, CodecError], Row]


def consume_values(
    stream: str, messages: Sequence[Message], recent: RecentMessages, on_error: ErrorRow
) -> tuple[list[ConsumedBatch], int]:
    """The batches of messages read from one stream, and how many were dropped as producer retries.

    Each message is decoded; one that does not decode becomes the event row ``on_error`` returns, at
    its position; a value equal to a recent one of its key (``recent``) keeps its position but gives
    no rows. Consecutive messages of one dataset become one batch (:func:`runs_to_batches`). With the
    compiled codec, values go to Arrow columns in one call per dataset and the rows of a batch are
    slices of those columns; without it, or for a value the compiled codec does not take, the
    reference :func:`decode_message` decodes. Both give the same batches.
    """
    if _native() is None:
        return _consume_python(stream, messages, recent, on_error)
    return _consume_native(stream, messages, recent, on_error)


def _consume_python(
    stream: str, messages: Sequence[Message], recent: RecentMessages, on_error: ErrorRow
) -> tuple[list[ConsumedBatch], int]:
    items: list[tuple[int, str, list[Row]]] = []
    duplicates = 0
    for i, (position, key, value) in enumerate(messages):
        try:
            if value is None:
                raise CodecError("message without a value")
            dataset, rows = decode_message(value)
        except CodecError as exc:
            items.append((position, "feed_events", [on_error(i, exc)]))
            continue
        if recent.repeated(key, value):
            duplicates += 1
            rows = []
        items.append((position, dataset, rows))
    return runs_to_batches(stream, items), duplicates


# A piece of a batch: a slice (table, offset, rows) of compiled output, or a table of its own.
_Piece = tuple[pa.Table, int, int]


def _consume_native(
    stream: str, messages: Sequence[Message], recent: RecentMessages, on_error: ErrorRow
) -> tuple[list[ConsumedBatch], int]:
    table_of_header = _by_header()
    datasets: list[str | None] = []
    by_dataset: dict[str, list[int]] = {}
    for i, (_, _, value) in enumerate(messages):
        entry = table_of_header.get(value[:HEADER_BYTES]) if value is not None else None
        dataset = entry[0] if entry is not None else None
        datasets.append(dataset)
        if dataset is not None:
            by_dataset.setdefault(dataset, []).append(i)
    pieces: list[_Piece | None] = [None] * len(messages)
    for dataset, indices in by_dataset.items():
        table, counts = decode_columns(dataset, [messages[i][2] for i in indices])  # type: ignore[misc]
        offset = 0
        for i, count in zip(indices, counts, strict=True):
            if count >= 0:
                pieces[i] = (table, offset, count)
                offset += count
    items: list[tuple[int, str, _Piece]] = []
    duplicates = 0
    for i, (position, key, value) in enumerate(messages):
        piece = pieces[i]
        dataset = datasets[i]
        if piece is None or dataset is None or value is None:
            # Not taken by the compiled codec: the reference decides (an error, or rows that do not
            # fit the columns: both become a decode_error event, as in runs_to_batches).
            try:
                if value is None:
                    raise CodecError("message without a value")
                dataset, rows = decode_message(value)
            except CodecError as exc:
                items.append((position, "feed_events", _rows_piece("feed_events", [on_error(i, exc)])))
                continue
            if recent.repeated(key, value):
                duplicates += 1
                rows = []
            ((_, dataset, rows),) = _fit_columns(stream, [(position, dataset, rows)])
            items.append((position, dataset, _rows_piece(dataset, rows)))
            continue
        if recent.repeated(key, value):
            duplicates += 1
            piece = (piece[0], piece[1], 0)
        items.append((position, dataset, piece))
    return _piece_runs(stream, items), duplicates


def _rows_piece(dataset: str, rows: list[Row]) -> _Piece:
    table = pa.Table.from_batches([rows_to_arrow(dataset, rows)])
    return table, 0, table.num_rows


def _piece_runs(stream: str, items: list[tuple[int, str, _Piece]]) -> list[ConsumedBatch]:
    """Consecutive items of one dataset as one batch; adjacent slices of one table stay one slice."""
    batches: list[ConsumedBatch] = []
    i = 0
    while i < len(items):
        first, dataset, _ = items[i]
        parts: list[pa.Table] = []
        current: _Piece | None = None
        j = i
        while j < len(items) and items[j][1] == dataset:
            table, offset, count = items[j][2]
            if count:
                if current is not None and current[0] is table and current[1] + current[2] == offset:
                    current = (table, current[1], current[2] + count)
                else:
                    if current is not None:
                        parts.append(current[0].slice(current[1], current[2]))
                    current = (table, offset, count)
            j += 1
        if current is not None:
            parts.append(current[0].slice(current[1], current[2]))
        if not parts:
            table = arrow_schema(dataset).empty_table()
        else:
            table = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
        batches.append(ConsumedBatch(stream, first, items[j - 1][0], dataset, table))
        i = j
    return batches


def split_encoded(records: Iterable[bytes], max_bytes: int) -> list[bytes]:
    """Joins encoded records into values of at most ``max_bytes`` each (a record never splits).

    A single record larger than ``max_bytes`` becomes a value of its own; the transport reports it
    if it is over the broker's limit.
    """
    values: list[bytes] = []
    part: list[bytes] = []
    size = 0
    for rec in records:
        if part and size + len(rec) > max_bytes:
            values.append(b"".join(part))
            part, size = [], 0
        part.append(rec)
        size += len(rec)
    if part:
        values.append(b"".join(part))
    return values


# ---------------------------------------------------------------------------------------------------
# Consumer helpers shared by the Kafka and Kinesis transports

#: Largest message value kept (base64) in a ``decode_error`` feed event.
MAX_KEPT_VALUE_BYTES = 64 * 1024
# The lake path takes the exchange id: only accept safe ids from an untrusted key.
_SAFE_EXCHANGE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
_SAFE_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9_.-]{0,63}$")


def decode_error_row(
    stream: str,
    position: int,
    key: bytes | str | None,
    value: bytes,
    error: Exception,
    ts_recv: int,
    channel: str,
) -> Row:
    """A ``feed_events`` row (kind ``decode_error``) for a message that is not valid ticktape Avro.

    Exchange and symbol come from the message key when they are safe ids (else ``unknown``/null);
    the detail keeps the stream, the position, the error and the value (base64, truncated).
    """
    text = key.decode("utf-8", "replace") if isinstance(key, bytes) else (key or "")
    exchange, _, symbol = text.partition("|")
    if not _SAFE_EXCHANGE.match(exchange):
        exchange = "unknown"
    kept = value[:MAX_KEPT_VALUE_BYTES]
    detail = {
        "stream": stream,
        "position": str(position),
        "error": str(error)[:500],
        "value_bytes": len(value),
        "value_b64": base64.b64encode(kept).decode(),
        "truncated": len(kept) < len(value),
    }
    safe_symbol = symbol if _SAFE_SYMBOL.match(symbol) and ".." not in symbol else None
    return (exchange, safe_symbol, channel, ts_recv, "decode_error", orjson.dumps(detail).decode())


def runs_to_batches(stream: str, items: Iterable[tuple[int, str, list[Row]]]) -> list[ConsumedBatch]:
    """Batches from decoded messages ``(position, dataset, rows)`` in stream order.

    Consecutive messages of one dataset become one batch covering their positions, so the batches
    of a stream have disjoint, increasing position ranges (what the sink's exactly-once needs). A
    message without rows (a dropped duplicate) still extends its run, so every position read is
    covered and a resumed sink never reads it again. A message that decodes but whose values do not
    fit the columns (a long beyond 64 bits) becomes a ``decode_error`` event at its position, so it
    can never stop a consumer or make it read the same message again and again.
    """
    listed = list(items)
    try:
        return _runs(stream, listed)
    except _COLUMN_ERRORS:
        return _runs(stream, _fit_columns(stream, listed))


def _runs(stream: str, items: list[tuple[int, str, list[Row]]]) -> list[ConsumedBatch]:
    batches: list[ConsumedBatch] = []
    run: list[Row] = []
    run_dataset = ""
    first = last = -1

    def close_run() -> None:
        if first >= 0:
            table = pa.Table.from_batches([rows_to_arrow(run_dataset, run)])
            batches.append(ConsumedBatch(stream, first, last, run_dataset, table))

    for position, dataset, rows in items:
        if dataset != run_dataset or first < 0:
            close_run()
            run, run_dataset, first = [], dataset, position
        run.extend(rows)
        last = position
    close_run()
    return batches


_COLUMN_ERRORS = (pa.ArrowException, OverflowError, TypeError, ValueError)


def _fit_columns(stream: str, items: list[tuple[int, str, list[Row]]]) -> list[tuple[int, str, list[Row]]]:
    """``items`` with every message whose rows Arrow rejects replaced by a ``decode_error`` event."""
    out: list[tuple[int, str, list[Row]]] = []
    for position, dataset, rows in items:
        try:
            rows_to_arrow(dataset, rows)
        except _COLUMN_ERRORS as exc:
            row = decode_error_row(stream, position, None, repr(rows).encode(), exc, time.time_ns(), dataset)
            out.append((position, "feed_events", [row]))
        else:
            out.append((position, dataset, rows))
    return out


class RecentMessages:
    """Recognises a message that repeats one of the last ``window`` messages of a stream.

    A producer that retries after a lost acknowledgement (Kafka without idempotence, a Kinesis call
    that timed out after it was written) puts the same value a second time, right after the first:
    the producer sends one batch per partition at a time. Every record carries its receive time in
    nanoseconds, so two equal values of one key are that retry, never two real events. Forget the
    window whenever the stream is repositioned (a seek re-reads on purpose).
    """

    def __init__(self, window: int = 8192) -> None:
        self.window = window
        self._order: collections.deque[int] = collections.deque()
        self._seen: set[int] = set()

    def repeated(self, key: bytes | str | None, value: bytes) -> bool:
        """True if ``(key, value)`` is among the recent messages; otherwise remembers it."""
        h = hash((key, value))
        if h in self._seen:
            return True
        self._seen.add(h)
        self._order.append(h)
        if len(self._order) > self.window:
            self._seen.discard(self._order.popleft())
        return False

    def reset(self) -> None:
        """Forgets everything (after a seek)."""
        self._order.clear()
        self._seen.clear()
