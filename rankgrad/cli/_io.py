"""Rollout files for ``rankgrad advantages`` and ``rankgrad prompts``: JSONL, CSV/TSV (optionally gzipped)
and Parquet.

Two streaming passes over the input, so memory is O(rows) numbers, never O(file):

1. :func:`scan` reads only the group key and the reward of each row into compact arrays (plus the
   location of every row, for error messages);
2. :func:`write` reads the rows again and writes each one unchanged plus the advantage column into a
   temporary file (see :mod:`rankgrad.cli._files`), renamed over OUT only when everything succeeded.

Both passes hash every byte they read and note the file's device, inode, size and mtime; if the two
passes disagree (the file was replaced or edited in between), nothing is written. Inputs that cannot
be read twice (stdin, FIFOs) are first copied to a temporary file (:func:`open_input`).

Row locations: for JSONL and CSV/TSV the 1-based physical line of the file where the row starts (the
CSV header is line 1; blank lines count); for Parquet the 0-based row index.

Values: rewards are JSON numbers or true/false (CSV: a decimal number matching
``[+-]?(digits[.digits]|.digits)([eE][+-]?digits)`` in ASCII, true/false, or the words nan / inf /
infinity with an optional sign; empty, null, none, na, n/a are null). A number too large for a float64
(``1e400``, ``10**400``) is a bad row ("out of range"), not an infinite reward. Group keys keep their
JSON type: strings, booleans and numbers are different groups (``"1"``, ``1`` and ``true`` are three
groups), numbers compare by value (``1`` and ``1.0`` are one group, shown as first seen); null,
missing, NaN and infinite keys are bad rows. CSV keys are strings.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import gzip
import hashlib
import io
import json
import math
import os
import re
import stat
import sys
import zlib
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from rankgrad.cli._common import EXIT_DATA, CliError, Progress, require

FORMATS = ("jsonl", "csv", "tsv", "parquet")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet",
               ".pq": "parquet"}
_CHUNK = 65_536  # rows per Parquet batch / per generic write chunk
_BLOCK = 1 << 20  # bytes per read when hashing or spooling
_CSV_NULLS = {"", "null", "none", "na", "n/a"}
_CSV_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_BOM = b"\xef\xbb\xbf"


class _Constant(float):
    """A float that was the literal NaN / Infinity / -Infinity in the JSON text (not an overflow)."""


# json's own parse_constant returns plain floats; this one marks them, so that ``1e400`` (parsed to inf
# by float()) can be told from the literal ``Infinity``.
_json_decode = json.JSONDecoder(parse_constant=lambda s: _Constant(float(s))).decode

# Reward status per row. BAD: a problem already reported by the scan (malformed row, non-numeric reward).
OK, MISSING, NULL, NAN, INF, BAD = 0, 1, 2, 3, 4, 5
UNSCORABLE = (MISSING, NULL, NAN, INF)
STATUS_TEXT = {MISSING: "missing reward key", NULL: "empty/null reward", NAN: "NaN reward",
               INF: "infinite reward"}
_CSV_WORDS = {w: st for st, words in ((NAN, ("nan",)), (INF, ("inf", "infinity"))) for base in words
              for w in (base, "+" + base, "-" + base)}  # the spelled-out non-finite values of a CSV cell


def reward_problem(status: int, reward_key: str) -> str:
    """What is wrong with an unscorable row's reward (``status`` in UNSCORABLE), for a FILE:LINE report."""
    return {MISSING: f"missing reward key {reward_key!r}", NULL: f"reward {reward_key!r} is empty/null",
            NAN: f"reward {reward_key!r} is NaN", INF: f"reward {reward_key!r} is infinite"}[status]


def report_problems(scan: Scan, problems: list[tuple[int, str]], *, max_errors: int, command: str,
                    written: str = "", group_key: str = "") -> None:
    """Print every bad row as ``FILE:LINE: message`` (at most ``max_errors``; 0 = all), the messages
    starting with "hint:", then a summary: counts per kind and "Nothing was written{written}."."""
    every = sorted((p for p in scan.problems + problems if not p[1].startswith("hint:")), key=lambda x: x[0])
    shown = every if max_errors <= 0 else every[:max_errors]
    for loc, msg in shown:
        print(f"{scan.spec.loc(loc)}: {msg}", file=sys.stderr)
    for _, msg in problems:
        if msg.startswith("hint:"):
            print(f"rankgrad {command}: {msg}", file=sys.stderr)
    if group_key and scan.n_rows and not (scan.codes >= 0).any():
        print(f"rankgrad {command}: hint: no row has a usable group key {group_key!r}; is --group-key right"
              + (", and do the lines end in LF (\\n)?" if scan.spec.fmt == "jsonl" else "?"), file=sys.stderr)
    total = sum(scan.counts.values())
    listed = "; ".join(f"{n} {cat}" for cat, n in scan.counts.most_common())
    more = "" if len(shown) >= total else f" (listed {len(shown)}; --max-errors 0 lists all)"
    print(f"rankgrad {command}: {total} problem(s) in {scan.spec.display}: {listed}{more}. Locations are "
          f"{scan.spec.where}. Nothing was written{written}.", file=sys.stderr)


# ------------------------------------------------------------------ formats
@dataclass(frozen=True)
class FileSpec:
    """A path with its format (``jsonl``/``csv``/``tsv``/``parquet``) and whether it is gzipped.

    ``name`` is how messages call the file when ``path`` is a temporary copy (``<stdin>``, a FIFO)."""

    path: str
    fmt: str
    gz: bool
    name: str = ""

    @property
    def display(self) -> str:
        return self.name or self.path

    @property
    def is_text(self) -> bool:
        return self.fmt != "parquet"

    @property
    def where(self) -> str:
        """How rows are located in messages."""
        if self.is_text:
            header = " (the header is line 1)" if self.fmt in ("csv", "tsv") else ""
            return f"1-based line numbers of {self.display}{header}"
        return f"0-based row indices of {self.display}"

    def loc(self, n: int) -> str:
        return f"{self.display}:{n}" if self.is_text else f"{self.display}: row {n}"


def file_spec(path: str, override: str, what: str) -> FileSpec:
    """Format from ``override`` or the extension (``.jsonl``, ``.ndjson``, ``.csv``, ``.tsv``, ``.parquet``,
    ``.pq``; text formats may end in ``.gz``)."""
    name = path.lower()
    gz = name.endswith(".gz")
    if gz:
        name = name[:-3]
    if override != "auto":
        fmt = override
    else:
        fmt = next((f for ext, f in _EXTENSIONS.items() if name.endswith(ext)), "")
        if not fmt:
            exts = ", ".join(_EXTENSIONS)
            option = "--format" if what == "IN" else "--output-format"
            raise CliError(f"{what} {path!r}: cannot tell the format from the extension (known: {exts}, "
                           f"text formats also with .gz); pass {option}.")
    if fmt == "parquet" and gz:
        raise CliError(f"{what} {path!r}: Parquet is compressed internally; drop the .gz.")
    return FileSpec(path, fmt, gz)


def open_input(path: str, override: str, tx: Any, what: str = "IN") -> FileSpec:
    """Check an input file; ``-`` (stdin) and non-regular files (FIFOs, ``<(...)``) are copied to a scratch
    file of the transaction ``tx`` first, since they cannot be read twice. Gzip on stdin is recognised
    by its magic bytes."""
    if path == "-":
        if override == "auto":
            raise CliError(f"{what} '-' (stdin): give its format with --format (jsonl, csv, tsv or parquet).")
        stdin = getattr(sys.stdin, "buffer", None)
        if stdin is None:
            raise CliError(f"{what} '-': stdin is closed or not a byte stream; give a file.")
        tmp = tx.scratch("stdin")
        with open(tmp, "wb") as f:
            _copy(stdin, f)
        with open(tmp, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b" and override != "parquet"
        return FileSpec(tmp, override, gz, name="<stdin>")
    spec = file_spec(path, override, what)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CliError(f"{what} {path!r}: no such file.") from None
    except OSError as err:
        raise CliError(f"{what} {path!r}: {err.strerror}.") from None
    if stat.S_ISDIR(st.st_mode):
        raise CliError(f"{what} {path!r}: is a directory; give a file.")
    if not os.access(path, os.R_OK):
        raise CliError(f"{what} {path!r}: permission denied (the file is not readable).")
    if stat.S_ISREG(st.st_mode):
        return spec
    tmp = tx.scratch("input")
    with open(path, "rb") as src, open(tmp, "wb") as f:
        _copy(src, f)
    return dataclasses.replace(spec, path=tmp, name=path)


def _copy(src: IO[bytes], dst: IO[bytes]) -> None:
    while chunk := src.read(_BLOCK):
        dst.write(chunk)


# ----------------------------------------------------------- reading bytes
@dataclass(frozen=True)
class Fingerprint:
    """What identifies the content of a file that was read: device, inode, size, mtime and a hash of
    every byte."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    digest: bytes


class _Reader(io.RawIOBase):
    """A raw reader that counts and hashes the bytes read from the file."""

    def __init__(self, f: io.BufferedIOBase) -> None:
        self._f = f
        self.count = 0
        self._hash = hashlib.blake2b(digest_size=16)
        self.opened = os.fstat(f.fileno())

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self._f.readinto(b) or 0
        self.count += n
        self._hash.update(memoryview(b)[:n])
        return n

    def fingerprint(self) -> Fingerprint:
        """Hash what the parser left unread, then the fingerprint; fails if the file changed while read."""
        while chunk := self._f.read(_BLOCK):
            self._hash.update(chunk)
        st = os.fstat(self._f.fileno())
        before = (self.opened.st_size, self.opened.st_mtime_ns)
        if (st.st_size, st.st_mtime_ns) != before:
            raise _Changed(f"its size or modification time changed while it was read (size {before[0]} -> "
                           f"{st.st_size})")
        return Fingerprint(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, self._hash.digest())

    def close(self) -> None:
        self._f.close()
        super().close()


class _Changed(Exception):
    """The input file changed while it was read."""


def fingerprint_of(path: str) -> Fingerprint | None:
    """The fingerprint of a file read from start to end now (None if it cannot be read)."""
    try:
        with open(path, "rb") as f:
            r = _Reader(f)
            return r.fingerprint()
    except (OSError, _Changed):
        return None


@contextlib.contextmanager
def _open_binary(spec: FileSpec, prints: list[Fingerprint]
                 ) -> Iterator[tuple[io.BufferedReader[_Reader] | gzip.GzipFile, _Reader]]:
    """The file's bytes (gunzipped if ``spec.gz``); on a clean exit its fingerprint goes to ``prints``."""
    raw = _Reader(open(spec.path, "rb"))
    buf = io.BufferedReader(raw, _BLOCK)
    try:
        yield (gzip.GzipFile(fileobj=buf, mode="rb") if spec.gz else buf), raw
        prints.append(raw.fingerprint())
    finally:
        buf.close()


@contextlib.contextmanager
def _open_text(spec: FileSpec, prints: list[Fingerprint]) -> Iterator[tuple[IO[str], _Reader]]:
    """The file as UTF-8 text (a leading BOM skipped) for the csv module."""
    with _open_binary(spec, prints) as (b, counter):
        yield io.TextIOWrapper(b, encoding="utf-8-sig", newline=""), counter


@contextlib.contextmanager
def _open_parquet(spec: FileSpec, prints: list[Fingerprint]) -> Iterator[Any]:
    """A ``pyarrow.parquet.ParquetFile`` over one open handle, whose bytes are hashed first (Parquet is
    read out of order); on a clean exit the fingerprint goes to ``prints``."""
    pq = require("pyarrow.parquet", "parquet", "reading Parquet")
    with open(spec.path, "rb") as f:
        raw = _Reader(f)  # kept until the end: closing (or collecting) it closes f
        fp = raw.fingerprint()
        f.seek(0)
        yield pq.ParquetFile(f)
        st = os.fstat(f.fileno())
        if (st.st_size, st.st_mtime_ns) != (fp.size, fp.mtime_ns):
            raise _Changed("its size or modification time changed while it was read")
        prints.append(fp)


def _jsonl_lines(f: io.BufferedIOBase) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line) of a JSONL byte stream; a UTF-8 BOM at the start is skipped."""
    lineno = 0
    for raw in f:
        lineno += 1
        if lineno == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM):]
        yield lineno, raw


def _first_bad_utf8(spec: FileSpec) -> tuple[int, int]:
    """(1-based line, 1-based byte in that line) of the first bytes that are not UTF-8 (0, 0 if none)."""
    with _open_binary(spec, []) as (f, _):
        for lineno, raw in _jsonl_lines(f):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as err:
                return lineno, err.start + 1
    return 0, 0


@contextlib.contextmanager
def _reading(spec: FileSpec, line: Any = None) -> Iterator[None]:
    """Turn the ways a file can be unreadable into one clear message about ``spec`` (exit 1): gzip data
    that is truncated or corrupt, bytes that are not UTF-8 (CSV; located by a second look), a CSV the
    csv module refuses, a Parquet file pyarrow refuses. ``line()`` gives the current line, if known."""
    where = spec.display
    try:
        yield
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        if not spec.gz:
            raise
        at = f" (after line {line()})" if line is not None else ""
        raise CliError(f"{where}: the gzip data is truncated or corrupt{at}: {err}. Check the file, or drop "
                       ".gz from its name if it is not gzipped.", EXIT_DATA) from None
    except UnicodeDecodeError as err:
        n, col = _first_bad_utf8(spec)
        at = f"{where}:{n}" if n else where
        raise CliError(f"{at}: not valid UTF-8 (byte {col} of the line: {err.reason}); save the file as "
                       "UTF-8.", EXIT_DATA) from None
    except csv.Error as err:
        at = f"{where}:{line()}" if line is not None else where
        raise CliError(f"{at}: unreadable CSV: {err}.", EXIT_DATA) from None
    except Exception as err:
        pa = sys.modules.get("pyarrow")
        if spec.fmt == "parquet" and pa is not None and isinstance(err, (pa.lib.ArrowException, OSError)):
            raise CliError(f"{where}: cannot read it as Parquet: {err}", EXIT_DATA) from None
        raise


def _delimiter(fmt: str) -> str:
    csv.field_size_limit(2**31 - 1)  # completions can exceed the csv module's default 128 KiB per field
    return "\t" if fmt == "tsv" else ","


def _size(spec: FileSpec) -> int:
    return os.path.getsize(spec.path)


# --------------------------------------------------------------- pass 1: scan
@dataclass
class Scan:
    """What pass 1 learned: per data row (file order) its group code, reward and location."""

    spec: FileSpec
    codes: np.ndarray  # int64 [B], −1 where the row has no usable group key
    rewards: np.ndarray  # float64 [B], NaN unless status == OK
    status: np.ndarray  # uint8 [B]: OK, MISSING, NULL, NAN, INF, BAD
    locs: np.ndarray  # int64 [B]: line (text, 1-based) or row index (Parquet, 0-based)
    labels: list[Any]  # group code → the key as found in the file
    problems: list[tuple[int, str]]  # fatal row problems (location, message), the first max_errors
    counts: Counter  # every problem by category (not capped)
    columns: list[str]  # column names in order of first appearance
    kinds: dict[str, set[str]] = field(default_factory=dict)  # JSONL → Parquet: value kinds per column
    samples: dict[str, list[Any]] = field(default_factory=dict)  # nested values to infer Arrow types
    fingerprint: Fingerprint | None = None  # of the bytes pass 1 read

    @property
    def n_rows(self) -> int:
        return int(self.codes.shape[0])


def _group_norm(key: Any) -> tuple[str, Any]:
    """The identity of a group key: its JSON type and value (1 and 1.0 one group; 1, "1", true three)."""
    if isinstance(key, bool):
        return "bool", key
    if isinstance(key, (int, float)):
        return "number", key
    if isinstance(key, str):
        return "string", key
    return type(key).__name__, key


class _Builder:
    """Accumulates pass-1 rows in compact typed arrays."""

    def __init__(self, spec: FileSpec, max_errors: int) -> None:
        self.spec = spec
        self.codes = array("q")
        self.rewards = array("d")
        self.status = array("B")
        self.locs = array("q")
        self.index: dict[Any, int] = {}
        self.labels: list[Any] = []
        self.problems: list[tuple[int, str]] = []
        self.counts: Counter = Counter()
        self.max_errors = max_errors

    def problem(self, loc: int, category: str, message: str) -> None:
        self.counts[category] += 1
        if self.max_errors <= 0 or len(self.problems) < self.max_errors:
            self.problems.append((loc, message))

    def code(self, key: Any) -> int:
        norm = _group_norm(key)
        c = self.index.get(norm)
        if c is None:
            c = self.index[norm] = len(self.labels)
            self.labels.append(key)
        return c

    def add(self, loc: int, code: int, status: int, reward: float) -> None:
        self.codes.append(code)
        self.status.append(status)
        self.rewards.append(reward if status == OK else math.nan)
        self.locs.append(loc)

    def finish(self, columns: list[str], prints: list[Fingerprint], **extra: Any) -> Scan:
        return Scan(
            spec=self.spec,
            codes=np.frombuffer(self.codes, dtype=np.int64).copy(),
            rewards=np.frombuffer(self.rewards, dtype=np.float64).copy(),
            status=np.frombuffer(self.status, dtype=np.uint8).copy(),
            locs=np.frombuffer(self.locs, dtype=np.int64).copy(),
            labels=self.labels,
            problems=self.problems,
            counts=self.counts,
            columns=columns,
            fingerprint=prints[-1] if prints else None,
            **extra,
        )


def _float_status(x: float) -> int:
    if math.isnan(x):
        return NAN
    if math.isinf(x):
        return INF
    return OK


def _json_kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    return "nested"


def scan(spec: FileSpec, group_key: str, reward_key: str, adv_key: str, *, overwrite: bool,
         want_columns: bool, want_kinds: bool, max_errors: int, progress: bool,
         named_fields: bool = False) -> Scan:
    """Pass 1: read the group key and reward of every row (see :class:`Scan`). ``named_fields``: the rows
    will be read as {column: value} (a conversion), so a column named twice is refused."""
    b = _Builder(spec, max_errors)
    try:
        if spec.fmt == "jsonl":
            return _scan_jsonl(b, group_key, reward_key, adv_key, overwrite, want_columns, want_kinds,
                               progress)
        if spec.fmt in ("csv", "tsv"):
            return _scan_csv(b, group_key, reward_key, adv_key, overwrite, progress, named_fields)
        return _scan_parquet(b, group_key, reward_key, adv_key, overwrite, progress, named_fields)
    except _Changed as err:
        raise CliError(f"{spec.display}: {err}; nothing was written.", EXIT_DATA) from None


def _scan_jsonl(b: _Builder, gk: str, rk: str, ak: str, overwrite: bool, want_columns: bool,
                want_kinds: bool, progress: bool) -> Scan:
    columns: dict[str, None] = {}
    kinds: dict[str, set[str]] = {}
    samples: dict[str, list[Any]] = {}
    prints: list[Fingerprint] = []
    lineno = 0
    with _reading(b.spec, lambda: lineno), _open_binary(b.spec, prints) as (f, counter), \
            Progress(progress, _size(b.spec), "pass 1/2 read", "B", unit_scale=True) as bar:
        seen = 0
        for lineno, raw in _jsonl_lines(f):
            if lineno % 4096 == 0:
                bar.update(counter.count - seen)
                seen = counter.count
            if not raw.strip():
                continue
            obj = _json_row(b, lineno, raw)
            if obj is None:
                continue
            if ak in obj and not overwrite:
                b.problem(lineno, f"key {ak!r} already present",
                          f"the row already has key {ak!r}; pass --advantage-key NAME or --overwrite")
            if want_columns:
                for k in obj:
                    if k not in columns:
                        columns[k] = None
            if want_kinds:
                for k, v in obj.items():
                    kind = _json_kind(v)
                    kinds.setdefault(k, set()).add(kind)
                    if kind == "nested" and len(samples.setdefault(k, [])) < 256:
                        samples[k].append(v)
            code = _json_group(b, lineno, obj, gk)
            status, reward = _json_reward(b, lineno, obj, rk)
            b.add(lineno, code, status, reward)
        bar.update(counter.count - seen)
    return b.finish(list(columns), prints, kinds=kinds, samples=samples)


def _json_row(b: _Builder, lineno: int, raw: bytes) -> dict | None:
    """One JSONL line as a dict, or None after reporting why it is not one."""
    try:
        obj = _json_decode(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        b.problem(lineno, "not UTF-8", f"not valid UTF-8 (byte {err.start + 1} of the line: {err.reason})")
        b.add(lineno, -1, BAD, math.nan)
        return None
    except RecursionError:
        b.problem(lineno, "malformed JSON", "malformed JSON: nested too deeply to read")
        b.add(lineno, -1, BAD, math.nan)
        return None
    except ValueError as err:  # JSONDecodeError; an integer of more than 4300 digits
        msg = f"{err.msg} (column {err.colno})" if isinstance(err, json.JSONDecodeError) else str(err)
        if b"\r" in raw.rstrip(b"\r\n"):
            msg += "; the lines seem to end in CR only, JSONL rows must end in LF (\\n)"
        b.problem(lineno, "malformed JSON", f"malformed JSON: {msg}")
        b.add(lineno, -1, BAD, math.nan)
        return None
    if not isinstance(obj, dict):
        b.problem(lineno, "not a JSON object", f"expected a JSON object, got {type(obj).__name__}")
        b.add(lineno, -1, BAD, math.nan)
        return None
    return obj


def _json_group(b: _Builder, loc: int, obj: dict, gk: str) -> int:
    if gk not in obj:
        keys = ", ".join(list(obj)[:8])
        b.problem(loc, "missing group key", f"missing group key {gk!r} (row keys: {keys}); see --group-key")
        return -1
    v = obj[gk]
    if v is None or isinstance(v, (dict, list)):
        what = "null" if v is None else type(v).__name__
        b.problem(loc, "bad group key", f"group key {gk!r} is {what}; expected a string or number")
        return -1
    if isinstance(v, float) and not math.isfinite(v):
        b.problem(loc, "bad group key", f"group key {gk!r} is {_short(v)}; expected a string or a finite "
                                        "number")
        return -1
    return b.code(v)


def _json_reward(b: _Builder, loc: int, obj: dict, rk: str) -> tuple[int, float]:
    if rk not in obj:
        return MISSING, math.nan
    v = obj[rk]
    if v is None:
        return NULL, math.nan
    if isinstance(v, (bool, int, float)):
        try:
            x = float(v)
        except OverflowError:  # an integer beyond float64
            x = math.inf
        if math.isinf(x) and not isinstance(v, _Constant):
            _out_of_range(b, loc, rk, v)
            return BAD, math.nan
        return _float_status(x), x
    b.problem(loc, "non-numeric reward", f"reward {rk!r} = {_short(v)} is not a number (or true/false)")
    return BAD, math.nan


def _out_of_range(b: _Builder, loc: int, rk: str, v: Any) -> None:
    b.problem(loc, "reward out of range", f"reward {rk!r} = {_short(v)} is out of range (a float64 reaches "
                                          "±1.8e308)")


def key_text(key: Any) -> str:
    """A group key for messages: strings quoted as Python does, other keys as JSON (true, 1, 2.5)."""
    return repr(key) if isinstance(key, str) else _short(key)


def _short(v: Any) -> str:
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10**40:
        s = f"{str(v)[:12]}...({len(str(abs(v)))} digits)"
        return s
    s = json.dumps(v, ensure_ascii=False, default=str)
    return s if len(s) <= 40 else s[:37] + "..."


def _csv_reward(b: _Builder, loc: int, text: str, rk: str) -> tuple[int, float]:
    low = text.lower()
    if low in _CSV_NULLS:
        return NULL, math.nan
    if _CSV_NUMBER.fullmatch(text):
        x = float(text)
        if math.isinf(x):
            _out_of_range(b, loc, rk, text)
            return BAD, math.nan
        return OK, x
    if low in _CSV_WORDS:
        return _CSV_WORDS[low], math.nan
    if low in ("true", "false"):
        return OK, float(low == "true")
    spaces = " (remove the spaces around it)" if text != text.strip() else ""
    b.problem(loc, "non-numeric reward", f"reward {rk!r} = {_short(text)} is not a number{spaces}")
    return BAD, math.nan


def _csv_header(reader: Any, spec: FileSpec) -> list[str]:
    for row in reader:
        if row:
            return row
    raise CliError(f"{spec.display}: the file is empty (expected a header row).", EXIT_DATA)


def _require_columns(spec: FileSpec, columns: list[str], keys: dict[str, str]) -> None:
    for opt, key in keys.items():
        if key not in columns:
            raise CliError(f"{spec.display}: no column {key!r} (columns: {', '.join(columns)}); see {opt}.",
                           EXIT_DATA)


def _unique_columns(spec: FileSpec, columns: list[str], keys: dict[str, str], named_fields: bool) -> None:
    """Refuse a column named twice where that loses data (a conversion reads rows as {name: value}) or
    makes a key column ambiguous."""
    for name, n in Counter(columns).items():
        if n > 1 and (named_fields or name in keys.values()):
            why = ("converting the rows to another format would keep only one of them" if named_fields
                   else "it is ambiguous which one is meant")
            raise CliError(f"{spec.display}: the header names column {name!r} {n} times; {why}. Rename the "
                           "columns so that each name appears once.", EXIT_DATA)


def _check_columns(spec: FileSpec, columns: list[str], gk: str, rk: str, ak: str, overwrite: bool,
                   named_fields: bool) -> None:
    """The header of a CSV/TSV or Parquet input: group and reward columns present, no column the run
    needs (or would lose) named twice, and no advantage column unless --overwrite."""
    keys = {"--group-key": gk, "--reward-key": rk}
    _require_columns(spec, columns, keys)
    _unique_columns(spec, columns, {**keys, "--advantage-key": ak}, named_fields)
    if ak in columns and not overwrite:
        raise CliError(f"{spec.display}: column {ak!r} already exists; pass --advantage-key NAME or "
                       "--overwrite.", EXIT_DATA)


def _scan_csv(b: _Builder, gk: str, rk: str, ak: str, overwrite: bool, progress: bool,
              named_fields: bool) -> Scan:
    prints: list[Fingerprint] = []
    state = {"line": 1}
    with _reading(b.spec, lambda: state["line"]), _open_text(b.spec, prints) as (f, counter), \
            Progress(progress, _size(b.spec), "pass 1/2 read", "B", unit_scale=True) as bar:
        reader = csv.reader(f, delimiter=_delimiter(b.spec.fmt))
        header = _csv_header(reader, b.spec)
        _check_columns(b.spec, header, gk, rk, ak, overwrite, named_fields)
        gi, ri, width = header.index(gk), header.index(rk), len(header)
        prev, seen = reader.line_num, 0
        for n, row in enumerate(reader):
            loc, prev = prev + 1, reader.line_num
            state["line"] = loc
            if n % 4096 == 0:
                bar.update(counter.count - seen)
                seen = counter.count
            if not row:
                continue
            if len(row) != width:
                b.problem(loc, "wrong number of fields",
                          f"expected {width} fields (as in the header), got {len(row)}")
                b.add(loc, -1, BAD, math.nan)
                continue
            key = row[gi]
            if key.strip() == "":
                b.problem(loc, "missing group key", f"empty group key {gk!r}; see --group-key")
                code = -1
            else:
                code = b.code(key)
            status, reward = _csv_reward(b, loc, row[ri], rk)
            b.add(loc, code, status, reward)
        bar.update(counter.count - seen)
    return b.finish(header, prints)


def _scan_parquet(b: _Builder, gk: str, rk: str, ak: str, overwrite: bool, progress: bool,
                  named_fields: bool) -> Scan:
    pa = require("pyarrow", "parquet", "reading Parquet")
    pc = require("pyarrow.compute", "parquet", "reading Parquet")
    prints: list[Fingerprint] = []
    codes, rewards, status, offset = [], [], [], 0
    with _reading(b.spec), _open_parquet(b.spec, prints) as pf:
        names = list(pf.schema_arrow.names)
        _check_columns(b.spec, names, gk, rk, ak, overwrite, named_fields)
        rtype, gtype = pf.schema_arrow.field(rk).type, pf.schema_arrow.field(gk).type
        if not (pa.types.is_integer(rtype) or pa.types.is_floating(rtype) or pa.types.is_boolean(rtype)
                or pa.types.is_decimal(rtype) or pa.types.is_null(rtype)):
            raise CliError(f"{b.spec.display}: reward column {rk!r} has type {rtype}; expected numbers or "
                           "booleans.", EXIT_DATA)
        if pa.types.is_nested(gtype):
            raise CliError(f"{b.spec.display}: group column {gk!r} has nested type {gtype}; expected strings "
                           "or numbers.", EXIT_DATA)
        with Progress(progress, pf.metadata.num_rows, "pass 1/2 read", "rows", unit_scale=True) as bar:
            for batch in pf.iter_batches(batch_size=_CHUNK, columns=[gk, rk]):
                n = batch.num_rows
                g, r = batch.column(0), batch.column(1)
                # unsafe cast: an integer beyond 2**53 becomes the nearest float, as in JSON
                x = pc.cast(r, pa.float64(), safe=False).to_numpy(zero_copy_only=False).astype(
                    np.float64, copy=True)
                null = r.is_null().to_numpy(zero_copy_only=False)
                st = np.full(n, OK, dtype=np.uint8)
                st[np.isinf(x)] = INF
                st[np.isnan(x)] = NAN
                st[null] = NULL
                x[st != OK] = np.nan
                enc = g if pa.types.is_dictionary(g.type) else pc.dictionary_encode(g)
                idx = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
                lut = np.array([_parquet_code(b, v) for v in enc.dictionary.to_pylist()] + [-1],
                               dtype=np.int64)
                c = lut[idx]  # idx −1 → the trailing −1
                for i in np.flatnonzero(c < 0):
                    v = enc.dictionary[int(idx[i])].as_py() if idx[i] >= 0 else None
                    what = "null" if v is None else _short(v)
                    b.problem(offset + int(i), "bad group key" if v is not None else "missing group key",
                              f"group key {gk!r} is {what}")
                codes.append(c)
                rewards.append(x)
                status.append(st)
                offset += n
                bar.update(n)
    return Scan(
        spec=b.spec,
        codes=np.concatenate(codes) if codes else np.zeros(0, np.int64),
        rewards=np.concatenate(rewards) if rewards else np.zeros(0),
        status=np.concatenate(status) if status else np.zeros(0, np.uint8),
        locs=np.arange(offset, dtype=np.int64),
        labels=b.labels,
        problems=b.problems,
        counts=b.counts,
        columns=names,
        fingerprint=prints[-1] if prints else None,
    )


def _parquet_code(b: _Builder, v: Any) -> int:
    """The group code of one Parquet dictionary value; −1 for null and non-finite floats."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return -1
    return b.code(v)


# ------------------------------------------------------------- pass 2: write
@contextlib.contextmanager
def _out_binary(path: str, gz: bool) -> Iterator[IO[bytes]]:
    f = open(path, "wb")
    try:
        if gz:
            with gzip.GzipFile(filename="", fileobj=f, mode="wb", mtime=0) as z:
                yield z  # type: ignore[misc]
        else:
            yield f
    finally:
        f.close()


@contextlib.contextmanager
def _out_text(path: str, gz: bool) -> Iterator[IO[str]]:
    with _out_binary(path, gz) as b:
        t = io.TextIOWrapper(b, encoding="utf-8", newline="")
        try:
            yield t
        finally:
            t.flush()
            t.detach()


def _num(a: float) -> str:
    """A finite number as text (repr: round-trips exactly). Non-finite numbers are never written."""
    x = float(a)
    if not math.isfinite(x):
        raise ValueError(f"refusing to write the non-finite number {x!r}")
    return repr(x)


def _json_default(v: Any) -> Any:
    if isinstance(v, bytes):
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return v.hex()
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if isinstance(v, np.generic):
        return v.item()
    return str(v)


def _cell(v: Any) -> str:
    """A value as CSV text: strings unchanged, null empty, everything else as JSON."""
    if isinstance(v, str):
        return v
    if v is None:
        return ""
    return json.dumps(v, ensure_ascii=False, default=_json_default)


def write(src: Scan, out: FileSpec, adv: np.ndarray, adv_key: str, *, overwrite: bool,
          progress: bool) -> None:
    """Pass 2: write every input row, unchanged, plus ``adv_key`` = ``adv`` (file order) to ``out.path``
    (a temporary file the caller renames on success). Fails, with nothing to rename, if IN is not
    byte for byte what pass 1 read."""
    inp = src.spec
    prints: list[Fingerprint] = []
    try:
        with Progress(progress, src.n_rows, "pass 2/2 write", "rows", unit_scale=True) as bar:
            if inp.fmt == "jsonl" and out.fmt == "jsonl":
                n = _jsonl_to_jsonl(inp, out, adv, adv_key, overwrite, bar, prints)
            elif inp.fmt in ("csv", "tsv") and out.fmt in ("csv", "tsv"):
                n = _csv_to_csv(inp, out, adv, adv_key, bar, prints)
            elif inp.fmt == "parquet" and out.fmt == "parquet":
                n = _parquet_to_parquet(inp, out, adv, adv_key, bar, prints)
            else:
                n = _generic(src, out, adv, adv_key, bar, prints)
    except Exception as err:  # a file that changed under us explains any failure to read it again
        now = fingerprint_of(inp.path)
        if isinstance(err, _Changed) or now != src.fingerprint:
            raise CliError(f"{inp.display} changed while it was read (between the two passes, or during "
                           "one); nothing was written.", EXIT_DATA) from None
        raise
    if n != src.n_rows or not prints or prints[-1] != src.fingerprint:
        detail = f"{src.n_rows} rows in pass 1, {n} in pass 2" if n != src.n_rows else \
            "its bytes, size, modification time or inode differ between the two passes"
        raise CliError(f"{inp.display} changed while it was read ({detail}); nothing was written.", EXIT_DATA)


def _jsonl_to_jsonl(inp: FileSpec, out: FileSpec, adv: np.ndarray, ak: str, overwrite: bool,
                    bar: Progress, prints: list[Fingerprint]) -> int:
    """Splice ``, "key": value`` before each object's closing brace, so the row's bytes stay exactly as
    they were. With ``overwrite`` the rows are parsed and re-serialised (the key keeps its position)."""
    key = json.dumps(ak, ensure_ascii=False).encode()
    n = 0
    with _reading(inp), _open_binary(inp, prints) as (f, _), _out_binary(out.path, out.gz) as w:
        for _, raw in _jsonl_lines(f):
            body = raw.strip()
            if not body:
                continue
            a = _num(adv[n]) if n < adv.shape[0] else "0.0"
            if overwrite:
                obj = _json_decode(body.decode("utf-8"))
                obj[ak] = float(a)
                w.write(json.dumps(obj, ensure_ascii=False).encode() + b"\n")
            else:
                inner = body[:-1].rstrip()  # pass 1 checked that every row is one JSON object
                sep = b"" if inner == b"{" else b", "
                w.write(inner + sep + key + b": " + a.encode() + b"}\n")
            n += 1
            if n % 4096 == 0:
                bar.update(4096)
    return n


def _csv_to_csv(inp: FileSpec, out: FileSpec, adv: np.ndarray, ak: str, bar: Progress,
                prints: list[Fingerprint]) -> int:
    n = 0
    with _reading(inp), _open_text(inp, prints) as (f, _), _out_text(out.path, out.gz) as w:
        reader = csv.reader(f, delimiter=_delimiter(inp.fmt))
        writer = csv.writer(w, delimiter=_delimiter(out.fmt), lineterminator="\n")
        header = _csv_header(reader, inp)
        pos = header.index(ak) if ak in header else None
        writer.writerow(header if pos is not None else [*header, ak])
        for row in reader:
            if not row:
                continue
            a = _num(adv[n]) if n < adv.shape[0] else "0.0"
            if pos is None:
                row.append(a)
            else:
                row[pos] = a
            writer.writerow(row)
            n += 1
            if n % 4096 == 0:
                bar.update(4096)
    return n


def _compression(pf: Any) -> str:
    try:
        c = str(pf.metadata.row_group(0).column(0).compression).lower()
    except Exception:  # no row groups
        return "snappy"
    return c if c in ("snappy", "gzip", "brotli", "zstd", "lz4", "none") else "snappy"


def _finite_column(pa: Any, values: np.ndarray) -> Any:
    if not np.isfinite(values).all():
        raise ValueError("refusing to write a non-finite advantage")
    return pa.array(values, pa.float64())


def _parquet_to_parquet(inp: FileSpec, out: FileSpec, adv: np.ndarray, ak: str, bar: Progress,
                        prints: list[Fingerprint]) -> int:
    pa = require("pyarrow", "parquet", "writing Parquet")
    pq = require("pyarrow.parquet", "parquet", "writing Parquet")
    n = 0
    with _reading(inp), _open_parquet(inp, prints) as pf:
        schema = pf.schema_arrow
        fld = pa.field(ak, pa.float64())
        pos = schema.get_field_index(ak)
        new_schema = schema.set(pos, fld) if pos >= 0 else schema.append(fld)
        with pq.ParquetWriter(out.path, new_schema, compression=_compression(pf)) as writer:
            for batch in pf.iter_batches(batch_size=_CHUNK):
                col = _finite_column(pa, adv[n : n + batch.num_rows])
                arrays = list(batch.columns)
                if pos >= 0:
                    arrays[pos] = col
                else:
                    arrays.append(col)
                writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=new_schema))
                n += batch.num_rows
                bar.update(batch.num_rows)
    return n


# ---------------------------------------------------- generic (cross-format)
def _dict_chunks(spec: FileSpec, prints: list[Fingerprint]) -> Iterator[list[dict[str, Any]]]:
    """The input rows as dicts, in chunks (pass 1 has validated them)."""
    if spec.fmt == "jsonl":
        with _reading(spec), _open_binary(spec, prints) as (f, _):
            chunk: list[dict[str, Any]] = []
            for _, raw in _jsonl_lines(f):
                if raw.strip():
                    chunk.append(_json_decode(raw.decode("utf-8")))
                    if len(chunk) == _CHUNK:
                        yield chunk
                        chunk = []
            if chunk:
                yield chunk
    elif spec.fmt in ("csv", "tsv"):
        with _reading(spec), _open_text(spec, prints) as (f, _):
            reader = csv.reader(f, delimiter=_delimiter(spec.fmt))
            header = _csv_header(reader, spec)
            chunk = []
            for row in reader:
                if row:
                    chunk.append(dict(zip(header, row, strict=True)))
                    if len(chunk) == _CHUNK:
                        yield chunk
                        chunk = []
            if chunk:
                yield chunk
    else:
        with _reading(spec), _open_parquet(spec, prints) as pf:
            for batch in pf.iter_batches(batch_size=_CHUNK):
                yield batch.to_pylist()


def _generic(src: Scan, out: FileSpec, adv: np.ndarray, ak: str, bar: Progress,
             prints: list[Fingerprint]) -> int:
    columns = list(src.columns)
    if ak not in columns:
        columns.append(ak)
    n = 0
    if out.fmt == "jsonl":
        with _out_binary(out.path, out.gz) as w:
            for chunk in _dict_chunks(src.spec, prints):
                lines = []
                for row in chunk:
                    row[ak] = float(_num(adv[n]))
                    n += 1
                    lines.append(json.dumps(row, ensure_ascii=False, default=_json_default))
                w.write(("\n".join(lines) + "\n").encode())
                bar.update(len(chunk))
    elif out.fmt in ("csv", "tsv"):
        with _out_text(out.path, out.gz) as t:
            writer = csv.writer(t, delimiter=_delimiter(out.fmt), lineterminator="\n")
            writer.writerow(columns)
            for chunk in _dict_chunks(src.spec, prints):
                for row in chunk:
                    row[ak] = _num(adv[n])
                    n += 1
                    writer.writerow([_cell(row.get(c)) for c in columns])
                bar.update(len(chunk))
    else:
        n = _generic_parquet(src, out, columns, adv, ak, bar, prints)
    return n


def _arrow_schema(src: Scan, columns: list[str], ak: str) -> tuple[Any, set[str]]:
    """Arrow schema for rows read from JSONL (types from the value kinds seen in pass 1) or CSV (strings).
    Returns (schema, columns written as JSON text because their values mix incompatible kinds)."""
    pa = require("pyarrow", "parquet", "writing Parquet")
    fields, as_text = [], set()
    for c in columns:
        if c == ak:
            fields.append(pa.field(c, pa.float64()))
            continue
        if src.spec.fmt != "jsonl":
            fields.append(pa.field(c, pa.string()))
            continue
        kinds = src.kinds.get(c, set()) - {"null"}
        if not kinds:
            t = pa.null()
        elif kinds == {"bool"}:
            t = pa.bool_()
        elif kinds == {"int"}:
            t = pa.int64()
        elif kinds <= {"int", "float"}:
            t = pa.float64()
        elif kinds == {"str"}:
            t = pa.string()
        elif kinds == {"nested"}:
            try:
                t = pa.infer_type(src.samples.get(c, []))
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                t = None
        else:
            t = None
        if t is None:  # mixed kinds: JSON text
            t = pa.string()
            as_text.add(c)
        fields.append(pa.field(c, t))
    return pa.schema(fields), as_text


def _generic_parquet(src: Scan, out: FileSpec, columns: list[str], adv: np.ndarray, ak: str,
                     bar: Progress, prints: list[Fingerprint]) -> int:
    pa = require("pyarrow", "parquet", "writing Parquet")
    pq = require("pyarrow.parquet", "parquet", "writing Parquet")
    schema, as_text = _arrow_schema(src, columns, ak)
    n = 0
    with pq.ParquetWriter(out.path, schema) as writer:
        for chunk in _dict_chunks(src.spec, prints):
            arrays = []
            for fld in schema:
                c = fld.name
                if c == ak:
                    arrays.append(_finite_column(pa, adv[n : n + len(chunk)]))
                    continue
                if c in as_text:
                    vals = [None if (v := row.get(c)) is None else v if isinstance(v, str)
                            else json.dumps(v, ensure_ascii=False, default=_json_default) for row in chunk]
                else:
                    vals = [row.get(c) for row in chunk]
                try:
                    arrays.append(pa.array(vals, type=fld.type))
                except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as err:
                    raise CliError(f"column {c!r}: its values do not fit one Parquet type ({err}); "
                                   "write JSONL instead.", EXIT_DATA) from None
            writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
            n += len(chunk)
            bar.update(len(chunk))
    return n
