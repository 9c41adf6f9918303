"""Instruments (reference data) and symbol discovery, shared by every venue.

Each venue's dialect fetches its instrument metadata over REST (:meth:`ExchangeDialect.fetch_instruments`,
which calls the pure :meth:`ExchangeDialect.parse_instruments` on each response body) and its simulator
serves the same endpoint for its markets. This module holds what is the same everywhere:

- :class:`Instrument`, one row of the ``instruments`` dataset (schemas/instruments.avsc, same order);
- :func:`resolve_symbols`: the symbols a user asked for (``all``, glob patterns such as ``BTC-*`` or
  ``*-PERP`` matched against normalised and native names, explicit names) against the venue's
  instruments; an explicit name the venue does not list is an :class:`UnknownSymbolError` naming the
  close matches (difflib);
- :class:`InstrumentBook`: the last published set, what changed in a new fetch (rows to write) and
  which symbols were listed or delisted;
- :func:`round_to_increment`: exact rounding of a float64 price or size to a tick or lot size;
- parser pieces: :func:`listed` (a spot/perpetual/future row named as the dialect names its rows),
  :func:`build_all`, :func:`positive`, :func:`currency`, :func:`decimals_increment`,
  :func:`significant_increment` (the step of a significant-digits price, Bitfinex's rule), :func:`ms_to_ns`.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterable, Sequence
from dataclasses import astuple, dataclass, replace
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from .base import ExchangeDialect

#: Seconds between two instrument fetches of a running collector (``[collect] instruments_refresh_s``).
DEFAULT_INSTRUMENTS_REFRESH_S = 3600.0
#: The status of an instrument that can be traded now (every venue's word for it maps to this).
TRADING = "trading"
#: Instrument kinds (the schema's ``kind``).
KINDS = ("spot", "perpetual", "future", "option")
#: The request for every instrument of a venue.
ALL = "all"
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class Instrument:
    """One instrument as the venue's reference data describes it (fields in schema order)."""

    exchange: str
    symbol: str
    native_symbol: str
    kind: str
    base: str
    quote: str
    settle: str | None
    tick_size: float
    lot_size: float
    contract_size: float | None
    expiry: int | None
    strike: float | None
    option_type: str | None
    status: str
    ts_recv: int

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.native_symbol}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not (self.tick_size > 0 and self.lot_size > 0):
            raise ValueError(
                f"{self.native_symbol}: tick size {self.tick_size} and lot size {self.lot_size} must be > 0"
            )

    @property
    def trading(self) -> bool:
        """True when the venue says the instrument trades now."""
        return self.status == TRADING

    def row(self) -> tuple[Any, ...]:
        """The ``instruments`` row."""
        return astuple(self)

    def key(self) -> tuple[Any, ...]:
        """Everything but the receive time: two fetches with equal keys describe the same instrument."""
        return astuple(self)[:-1]


def ms_to_ns(value: Any) -> int | None:
    """A venue's millisecond timestamp (int or numeric string; 0 or empty: none) as integer ns."""
    if value is None or value == "":
        return None
    ms = int(value)
    return ms * 1_000_000 if ms > 0 else None


def positive(value: Any) -> float:
    """A strictly positive float from a venue's number or numeric string (ValueError otherwise; a JSON
    boolean is not a number)."""
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    number = float(value)
    if not number > 0 or number == float("inf"):
        raise ValueError(f"not a positive number: {value!r}")
    return number


def currency(value: Any) -> str:
    """A venue's currency or asset code: a non-empty string of at most 40 characters (TypeError or
    ValueError otherwise, so an item naming none is left out rather than written as ``"None"``)."""
    if not isinstance(value, str):
        raise TypeError(f"not a currency code: {str(value)[:40]!r}")
    if not 0 < len(value) <= 40:
        raise ValueError(f"not a currency code: {value[:40]!r}")
    return value


def decimals_increment(decimals: Any, lowest: int = 0) -> float:
    """The increment of a count of decimals (``4`` -> ``0.0001``), exactly as a float parses it.

    ``lowest`` is the smallest count the venue may send: a venue whose precision can be negative
    (``-3``: whole thousands, ``1000.0``) passes ``-18``. A count outside ``lowest..18``, a bool or a
    non-integer number is a ValueError."""
    if isinstance(decimals, bool) or (isinstance(decimals, float) and not decimals.is_integer()):
        raise ValueError(f"decimals is not an integer: {decimals!r}")
    places = int(decimals)
    if not lowest <= places <= 18:
        raise ValueError(f"decimals out of range: {decimals!r}")
    return float(Decimal(1).scaleb(-places))


def status_of(value: Any, *trading: str) -> str:
    """A venue's instrument state as our ``status``: :data:`TRADING` when it is one of ``trading``
    (compared case-insensitively), else the venue's word in lower case (``Paused`` -> ``paused``)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"state is not a word: {str(value)[:40]!r}")
    word = value.lower()
    return TRADING if word in {t.lower() for t in trading} else word


def answer_list(
    body: str | bytes,
    what: str,
    key: str | None = None,
    error: Callable[[dict[str, Any]], str | None] | None = None,
) -> list[Any]:
    """The instrument list of a venue's answer: the JSON body itself (``key`` None) or the ``key``
    member of the answer object. ``error(answer)`` is the venue's envelope check: the reason an answer
    is an error (``"code 51000 Parameter instType error"``), None for a good one. Anything but a list
    (not JSON, an error answer, a member that is not a list) is a ValueError naming ``what`` and the
    reason or the start of the answer, so the collector's ``instruments_error`` event says what came
    back."""
    data = orjson.loads(body)  # orjson.JSONDecodeError is a ValueError
    items: Any = data
    if key is not None:
        if not isinstance(data, dict):
            raise ValueError(f"{what}: not an answer object: {str(data)[:160]}")
        reason = error(data) if error is not None else None
        if reason is not None:
            raise ValueError(f"{what}: {reason[:160]}")
        items = data.get(key)
    if not isinstance(items, list):
        raise ValueError(f"{what}: not an instrument list: {str(data)[:160]}")
    return items


def significant_increment(price: Any, digits: int) -> float:
    """The step of a price quoted to ``digits`` significant digits at the level of ``price``
    (``97000`` at 5 digits -> ``1.0``, ``0.5`` -> ``1e-05``), exactly as a float parses it; ValueError
    for a price that is not a positive number."""
    places = Decimal(repr(positive(price))).adjusted() - digits + 1
    return float(Decimal(1).scaleb(places))


def round_to_increment(value: float, increment: float) -> float:
    """``value`` rounded to the nearest whole multiple of ``increment`` (half to even), exactly.

    Prices and sizes are float64 in the lake; ``0.1 + 0.2`` style noise (``65000.010000001``)
    disappears here. The arithmetic is decimal on the shortest decimal form of both floats (the venue
    sent that text), so the result is the float of the exact decimal multiple: ``round_to_increment(
    65000.010000001, 0.01) == 65000.01``. Raises ValueError for a non-positive increment.
    """
    if not increment > 0:
        raise ValueError(f"increment must be > 0, not {increment!r}")
    step = Decimal(repr(increment))
    count = (Decimal(repr(value)) / step).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return float(count * step)


def listed(
    dialect: ExchangeDialect,
    native: str,
    kind: str,
    base: str,
    quote: str,
    tick_size: float,
    lot_size: float,
    status: str,
    ts_recv: int,
    *,
    settle: str | None = None,
    contract_size: float | None = None,
    expiry: int | None = None,
    strike: float | None = None,
    option_type: str | None = None,
) -> Instrument:
    """An instrument named as the dialect names its rows (``symbol`` is
    ``dialect.normalise_symbol(native)``, so instruments join the other datasets; a name the dialect
    cannot normalise is a ValueError and the item is left out). ``strike`` and ``option_type`` are
    for options only."""
    return Instrument(
        exchange=dialect.exchange_id,
        symbol=dialect.normalise_symbol(native),
        native_symbol=native,
        kind=kind,
        base=base,
        quote=quote,
        settle=settle,
        tick_size=tick_size,
        lot_size=lot_size,
        contract_size=contract_size,
        expiry=expiry,
        strike=strike,
        option_type=option_type,
        status=status,
        ts_recv=ts_recv,
    )


def build_all(items: Iterable[Any], build: Callable[[Any], Instrument | None]) -> list[Instrument]:
    """``build`` applied to each item of a venue's list; an item it cannot read (KeyError, TypeError,
    ValueError: a missing or malformed field) is left out, so one odd instrument never hides the others.
    ``build`` returns None for items that are not instruments this collector handles."""
    out: list[Instrument] = []
    for item in items:
        try:
            inst = build(item)
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        if inst is not None:
            out.append(inst)
    return out


def round_array(values: Any, increment: float) -> Any:
    """``values`` (a numpy array or anything ``numpy.asarray`` takes; NaN stays NaN) rounded to whole
    multiples of ``increment``, each the float nearest the exact decimal multiple (as
    :func:`round_to_increment`, vectorised).

    For an increment that is ``1/k`` for an integer ``k`` (0.01, 0.5, 0.0005...) the multiple is
    ``rint(v * k) / k``: one correctly rounded division of two exact floats, so it is the float nearest
    the decimal; for a whole increment (5, 10) it is ``rint(v / i) * i``, exact. Other increments fall
    back to :func:`round_to_increment` per value.
    """
    import numpy as np

    array = np.asarray(values, dtype=np.float64)
    if not increment > 0:
        raise ValueError(f"increment must be > 0, not {increment!r}")
    inverse = round(1.0 / increment)
    if inverse >= 1 and abs(1.0 / increment - inverse) < 1e-9 * inverse:
        return np.rint(array * inverse) / inverse
    if increment >= 1 and float(increment).is_integer():
        return np.rint(array / increment) * increment
    out = np.array([v if v != v else round_to_increment(float(v), increment) for v in array.ravel()])
    return out.reshape(array.shape)


class UnknownSymbolError(ValueError):
    """Symbols the venue does not list (with the closest names it does list)."""

    def __init__(self, exchange: str, missing: dict[str, list[str]]) -> None:
        self.exchange = exchange
        self.missing = missing
        parts = []
        for name, close in missing.items():
            hint = f" (did you mean {', '.join(close)}?)" if close else " (no close match)"
            parts.append(f"{name!r}{hint}")
        super().__init__(f"{exchange} does not list {'; '.join(parts)}")


def is_pattern(requested: str) -> bool:
    """True for ``all`` and glob patterns (``*``, ``?``, ``[...]``), which follow the venue's listings."""
    return requested.lower() == ALL or any(c in _GLOB_CHARS for c in requested)


def matches(pattern: str, instrument: Instrument) -> bool:
    """True when ``pattern`` (``all`` or a glob, case-insensitive) matches the instrument's normalised
    or native name."""
    if pattern.lower() == ALL:
        return True
    upper = pattern.upper()
    return fnmatch.fnmatchcase(instrument.symbol.upper(), upper) or fnmatch.fnmatchcase(
        instrument.native_symbol.upper(), upper
    )


def resolve_symbols(
    dialect: ExchangeDialect, requested: Sequence[str], instruments: Iterable[Instrument]
) -> list[str]:
    """Native symbols of the requested ones, in request order, without duplicates.

    ``all`` and globs select every *trading* instrument they match; an explicit symbol (native or
    normalised) must be listed by the venue (any status: a halted market can still be watched), else
    :class:`UnknownSymbolError` lists up to three close matches for each missing one.
    """
    listed = list(instruments)
    by_native = {i.native_symbol: i for i in listed}
    by_name: dict[str, str] = {}
    for inst in listed:
        by_name.setdefault(inst.symbol.upper(), inst.native_symbol)
        by_name.setdefault(inst.native_symbol.upper(), inst.native_symbol)
    out: dict[str, None] = {}
    missing: dict[str, list[str]] = {}
    for name in requested:
        if is_pattern(name):
            for inst in listed:
                if inst.trading and matches(name, inst):
                    out.setdefault(inst.native_symbol)
            continue
        native = _explicit_native(dialect, name)
        found = native if native in by_native else by_name.get(name.upper())
        if found is None and native is not None:
            found = by_name.get(native.upper())
        if found is None and native is not None and not native.isascii():
            # a non-ASCII name (Binance lists some) is outside the lake's symbol rule, so it has no
            # instruments row to check against: collected as named, its frames are counted parse errors
            found = native
        if found is None:
            missing[name] = difflib.get_close_matches(name.upper(), list(by_name), n=3, cutoff=0.6)
            continue
        out.setdefault(found)
    if missing:
        raise UnknownSymbolError(dialect.exchange_id, missing)
    return list(out)


def _explicit_native(dialect: ExchangeDialect, name: str) -> str | None:
    try:
        return dialect.native_symbol(name)
    except ValueError:
        return None


class InstrumentBook:
    """The instruments a collector last published, and what a new fetch changes.

    :meth:`update` returns the rows to write (new and changed instruments; an instrument that
    vanished is written once more with status ``delisted``) and the native symbols that started and
    stopped trading. The first update writes every instrument and lists nothing (nothing was known).
    """

    def __init__(self) -> None:
        self.current: dict[str, Instrument] = {}
        self.fetched = False

    def update(
        self, fetched: Iterable[Instrument], ts_recv: int
    ) -> tuple[list[Instrument], list[str], list[str]]:
        """Applies a fetch: ``(rows to write, natives now trading that were not, natives no longer trading)``."""
        new = {i.native_symbol: i for i in fetched}
        rows: list[Instrument] = []
        listed: list[str] = []
        delisted: list[str] = []
        first = not self.fetched
        for native, inst in new.items():
            old = self.current.get(native)
            if old is None or old.key() != inst.key():
                rows.append(inst)
            if not first and inst.trading and (old is None or not old.trading):
                listed.append(native)
            if not first and old is not None and old.trading and not inst.trading:
                delisted.append(native)
        for native, old in self.current.items():
            if native in new:
                continue
            if old.status == "delisted":
                new[native] = old  # written once already
                continue
            gone = replace(old, status="delisted", ts_recv=ts_recv)
            rows.append(gone)
            new[native] = gone
            if old.trading:
                delisted.append(native)
        self.current = new
        self.fetched = True
        return rows, listed, delisted
