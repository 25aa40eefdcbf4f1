"""Where daily bars come from: the ``arch`` data sets or a folder of per-symbol files.

A :class:`MarketSource` names the symbols it can provide and loads the *raw*
bars of one symbol in the bar-frame convention of
:mod:`include.modelwatch.data.market` (columns :data:`~include.modelwatch.data.market.BAR_COLUMNS`,
``date`` datetime64[ns] normalized, prices and volume float64; rows in source
order, not yet cleaned). :func:`load_clean` loads several symbols from a source
and runs :func:`~include.modelwatch.data.market.clean_bars` (the module's
data-problem policy, including the future-dated-bar rule when ``as_of`` is given).

Sources, by spec string (:func:`source_from_spec`)::

    arch               ArchSource(): SPX and IXIC shipped by the ``arch`` package (cached per process)
    folder:/abs/path   FolderSource("/abs/path"): one file per symbol, <SYMBOL>.csv or <SYMBOL>.parquet

Folder files: columns ``date, open, high, low, close`` and optionally ``volume``
and ``symbol`` (headers case-insensitive, surrounding blanks ignored, other
columns ignored). Missing ``volume`` column -> NaN volume. A ``symbol`` column
must match the file name on every row (case-insensitive). The symbol is the file
name without extension; lookups are case-insensitive and return the file's
spelling. Files are read on every :meth:`FolderSource.load` (no cache, so a
re-delivered file with corrected bars is seen). Pure: no Airflow, no database.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from include.modelwatch.data import market
from include.modelwatch.data.market import BAR_COLUMNS, PRICE_COLUMNS, BarsDataError, BarsPolicy, BarsReport

FOLDER_SUFFIXES: tuple[str, ...] = (".csv", ".parquet")
REQUIRED_FILE_COLUMNS: tuple[str, ...] = ("date", "open", "high", "low", "close")


class UnknownSymbolError(BarsDataError):
    """The source has no bars for the requested symbol (message lists what it has)."""

    def __init__(self, symbol: str, source: str, available: Iterable[str], hint: str = "") -> None:
        self.source = source
        self.available = list(available)
        have = ", ".join(self.available) if self.available else "no symbols"
        self.symbol = symbol
        self.date = "-"
        self.problem = f"unknown symbol {symbol!r} for source {source!r}; it has: {have}{hint}"
        ValueError.__init__(self, self.problem)  # no "<symbol> <date>:" prefix: there is no date


@runtime_checkable
class MarketSource(Protocol):
    """Anything that provides raw daily bars per symbol."""

    name: str

    def symbols(self) -> list[str]:
        """Symbols this source can provide (sorted)."""
        ...

    def load(self, symbol: str) -> pd.DataFrame:
        """Raw bars of ``symbol`` (bar-frame convention, uncleaned); :class:`UnknownSymbolError` if absent."""
        ...


# --------------------------------------------------------------------------- arch


class ArchSource:
    """The index data sets shipped by ``arch`` (see :func:`market.load_arch_bars`); aliases accepted."""

    def __init__(self) -> None:
        self.name = "arch"

    def __repr__(self) -> str:
        return "ArchSource()"

    def symbols(self) -> list[str]:
        return sorted(market.ARCH_SYMBOLS)

    def load(self, symbol: str) -> pd.DataFrame:
        key = str(symbol).strip().upper()
        key = market.SYMBOL_ALIASES.get(key, key)
        if key not in market.ARCH_SYMBOLS:
            aliases = ", ".join(f"{a}={c}" for a, c in sorted(market.SYMBOL_ALIASES.items()))
            raise UnknownSymbolError(str(symbol), self.name, self.symbols(), f" (aliases: {aliases})")
        return market.arch_raw_bars(key)


# --------------------------------------------------------------------------- folder


class FolderSource:
    """One file per symbol in ``root``: ``<SYMBOL>.csv`` or ``<SYMBOL>.parquet`` (see the module docstring).

    The folder is only read by :meth:`symbols` / :meth:`load` (constructing it
    touches no file); a missing folder is a ``FileNotFoundError`` naming it.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.name = f"folder:{self.root}"

    def __repr__(self) -> str:
        return f"FolderSource({str(self.root)!r})"

    def _files(self) -> dict[str, list[Path]]:
        if not self.root.is_dir():
            raise FileNotFoundError(f"market data folder {str(self.root)!r} (source {self.name!r}) does not exist")
        by_key: dict[str, list[Path]] = {}
        for p in sorted(self.root.iterdir()):
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in FOLDER_SUFFIXES and p.stem:
                by_key.setdefault(p.stem.upper(), []).append(p)
        return by_key

    def symbols(self) -> list[str]:
        return sorted(ps[0].stem for ps in self._files().values())

    def path_for(self, symbol: str) -> Path:
        """The file holding ``symbol`` (case-insensitive); error if none or several."""
        files = self._files()
        found = files.get(str(symbol).strip().upper())
        if not found:
            raise UnknownSymbolError(
                str(symbol), self.name, sorted(ps[0].stem for ps in files.values()), " (expected <SYMBOL>.csv/.parquet)"
            )
        if len(found) > 1:
            raise BarsDataError(
                found[0].stem,
                None,
                f"several files for one symbol in {self.name!r}: {', '.join(p.name for p in found)}",
            )
        return found[0]

    def load(self, symbol: str) -> pd.DataFrame:
        """The bars of ``symbol`` (its file found case-insensitively), labelled with the symbol as asked for: the
        models' settings name it, and scoring reads it back under that name."""
        path = self.path_for(symbol)
        bars = read_bar_file(path, path.stem)
        bars["symbol"] = str(symbol).strip()
        return bars


def _where(path: Path, i: int) -> str:
    # CSV: the file line (header is line 1); Parquet: the 0-based row
    return f"{path.name} line {i + 2}" if path.suffix.lower() == ".csv" else f"{path.name} row {i}"


def read_bar_file(path: str | Path, symbol: str | None = None) -> pd.DataFrame:
    """Raw bars of one CSV / Parquet file (``symbol`` defaults to the file name without extension).

    Every problem is a :class:`BarsDataError` naming the symbol and the file
    (and the line / row for bad cells).
    """
    path = Path(path)
    sym = symbol or path.stem
    try:
        if path.suffix.lower() == ".parquet":
            raw = pd.read_parquet(path)
        else:
            raw = pd.read_csv(path, dtype=str, skipinitialspace=True)  # numbers parsed below, per cell
    except pd.errors.EmptyDataError as exc:
        raise BarsDataError(sym, None, f"{path.name}: empty file") from exc
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise BarsDataError(sym, None, f"{path.name}: cannot read ({type(exc).__name__}: {exc})") from exc
    if "date" not in [str(c).strip().lower() for c in raw.columns] and str(raw.index.name or "").lower() == "date":
        raw = raw.reset_index()
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    dup = sorted({c for c in raw.columns if list(raw.columns).count(c) > 1})
    if dup:
        raise BarsDataError(
            sym, None, f"{path.name}: column(s) {dup} appear more than once (headers are case-insensitive)"
        )
    missing = [c for c in REQUIRED_FILE_COLUMNS if c not in raw.columns]
    if missing:
        raise BarsDataError(sym, None, f"{path.name}: missing column(s) {missing}; has {list(raw.columns)}")
    raw = raw.reset_index(drop=True)

    if "symbol" in raw.columns:
        given = raw["symbol"]
        ok = given.notna() & (given.astype(str).str.strip().str.upper() == sym.upper())
        if not ok.all():
            i = int(np.flatnonzero(~ok.to_numpy())[0])
            raise BarsDataError(
                sym,
                None,
                f"{_where(path, i)}: symbol column {given.iloc[i]!r} does not match the file name "
                f"({int((~ok).sum())} row(s) differ)",
            )

    dates = _parse_dates(raw["date"], path, sym)
    out = pd.DataFrame({"symbol": sym, "date": dates})
    for col in [*PRICE_COLUMNS, "volume"]:
        if col in raw.columns:
            out[col] = _numeric(raw[col], col, path, sym)
        else:
            out[col] = np.nan
    return out[BAR_COLUMNS]


def _parse_dates(col: pd.Series, path: Path, sym: str) -> pd.Series:
    missing = col.isna() | (col.astype(str).str.strip() == "")
    if missing.any():
        i = int(np.flatnonzero(missing.to_numpy())[0])
        raise BarsDataError(sym, None, f"{_where(path, i)}: missing date")
    if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        raise BarsDataError(sym, None, f"{path.name}: date column is {col.dtype}, expected dates (e.g. 2020-01-31)")
    if not pd.api.types.is_datetime64_any_dtype(col):
        col = col.map(lambda v: v.strip() if isinstance(v, str) else v)
    try:
        dt = pd.to_datetime(col)  # one format for the whole column, inferred from the first value
    except (TypeError, ValueError, OverflowError):
        try:
            dt = pd.to_datetime(col, format="ISO8601")  # ISO dates of differing precision
        except (TypeError, ValueError, OverflowError) as exc:
            coerced = pd.to_datetime(col, errors="coerce")
            bad = coerced.isna().to_numpy()
            i = int(np.flatnonzero(bad)[0]) if bad.any() else 0
            why = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". You might want")[0]
            raise BarsDataError(sym, None, f"{_where(path, i)}: unparseable date {col.iloc[i]!r} ({why})") from None
    if getattr(dt.dt, "tz", None) is not None:
        dt = dt.dt.tz_localize(None)  # the session date is the local wall-clock date
    return dt.dt.normalize().astype("datetime64[ns]")


def _numeric(col: pd.Series, name: str, path: Path, sym: str) -> pd.Series:
    num = pd.to_numeric(col, errors="coerce").astype("float64")
    bad = (num.isna() & col.notna() & (col.astype(str).str.strip() != "")).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise BarsDataError(sym, None, f"{_where(path, i)}: {name} {col.iloc[i]!r} is not a number")
    return num


# --------------------------------------------------------------------------- spec + loading


def source_from_spec(spec: str) -> MarketSource:
    """``"arch"`` -> :class:`ArchSource`; ``"folder:/abs/path"`` -> :class:`FolderSource`.

    ``source.name`` round-trips: ``source_from_spec(src.name)`` builds the same source.
    """
    if not isinstance(spec, str):
        raise TypeError(f"market source spec must be a string, got {type(spec).__name__}")
    s = spec.strip()
    if s.lower() == "arch":
        return ArchSource()
    kind, sep, rest = s.partition(":")
    if sep and kind.strip().lower() == "folder":
        path = rest.strip()
        if not path:
            raise ValueError(f"market source spec {spec!r}: folder path is empty (use 'folder:/abs/path')")
        if not Path(path).is_absolute():
            raise ValueError(f"market source spec {spec!r}: folder path must be absolute (use 'folder:/abs/path')")
        return FolderSource(path)
    raise ValueError(f"unknown market source spec {spec!r}; expected 'arch' or 'folder:/abs/path'")


def load_clean(
    source: MarketSource,
    symbols: Iterable[str],
    *,
    as_of: object | None = None,
    policy: BarsPolicy | None = None,
) -> tuple[pd.DataFrame, dict[str, BarsReport]]:
    """Load ``symbols`` from ``source`` and clean them with :func:`market.clean_bars`.

    Returns ``(bars, {symbol: BarsReport})`` keyed by the symbol the source
    returned (e.g. ``"ndx"`` from arch -> ``"IXIC"``); a symbol requested twice
    (also via an alias) is loaded once. ``as_of`` enables the future-dated-bar
    rule (``policy.on_future``). Raises :class:`UnknownSymbolError` /
    :class:`BarsDataError` naming the symbol.
    """
    wanted = [symbols] if isinstance(symbols, str) else list(symbols)
    if not wanted:
        raise ValueError(f"no symbols requested from source {source.name!r}")
    frames: list[pd.DataFrame] = []
    seen: set[str] = set()
    for requested in wanted:
        raw = source.load(requested)
        if len(raw) == 0:
            raise BarsDataError(str(requested), None, f"no bars in source {source.name!r}")
        if "symbol" not in raw.columns:
            raise BarsDataError(str(requested), None, f"source {source.name!r} returned bars without a symbol column")
        got = raw["symbol"].astype(str).unique()
        if len(got) != 1:
            raise BarsDataError(
                str(requested), None, f"source {source.name!r} returned bars of several symbols: {sorted(got)}"
            )
        if got[0] in seen:
            continue
        seen.add(str(got[0]))
        frames.append(raw)
    return market.clean_bars(pd.concat(frames, ignore_index=True), policy, as_of=as_of)
