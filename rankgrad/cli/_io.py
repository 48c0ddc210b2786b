"""Rollout files for ``rankgrad advantages``: JSONL, CSV/TSV (optionally gzipped) and Parquet.

Two streaming passes over the input, so memory is O(rows) numbers, never O(file):

1. :func:`scan` reads only the group key and the reward of each row into compact arrays (plus the
   location of every row, for error messages);
2. :func:`write` reads the rows again and writes each one unchanged plus the advantage column into a
   temporary file next to OUT, which replaces OUT only when everything succeeded.

Row locations: for JSONL and CSV/TSV the 1-based physical line of the file where the row starts (the
CSV header is line 1; blank lines count); for Parquet the 0-based row index.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import math
import os
import sys
import tempfile
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
_CSV_NULLS = {"", "null", "none", "na", "n/a"}
_json_decode = json.JSONDecoder().decode  # on str: skips json.loads' encoding detection of bytes

# Reward status per row. BAD: a problem already reported by the scan (malformed row, non-numeric reward).
OK, MISSING, NULL, NAN, INF, BAD = 0, 1, 2, 3, 4, 5
UNSCORABLE = (MISSING, NULL, NAN, INF)
STATUS_TEXT = {MISSING: "missing reward key", NULL: "empty/null reward", NAN: "NaN reward",
               INF: "infinite reward"}


def reward_problem(status: int, reward_key: str) -> str:
    """What is wrong with an unscorable row's reward (``status`` in UNSCORABLE), for a FILE:LINE report."""
    return {MISSING: f"missing reward key {reward_key!r}", NULL: f"reward {reward_key!r} is empty/null",
            NAN: f"reward {reward_key!r} is NaN", INF: f"reward {reward_key!r} is infinite"}[status]


def report_problems(scan: Scan, problems: list[tuple[int, str]], *, max_errors: int, command: str,
                    written: str = "") -> None:
    """Print every bad row as ``FILE:LINE: message`` (at most ``max_errors``; 0 = all), the messages
    starting with "hint:", then a summary: counts per kind and "Nothing was written{written}."."""
    every = sorted((p for p in scan.problems + problems if not p[1].startswith("hint:")), key=lambda x: x[0])
    shown = every if max_errors <= 0 else every[:max_errors]
    for loc, msg in shown:
        print(f"{scan.spec.loc(loc)}: {msg}", file=sys.stderr)
    for _, msg in problems:
        if msg.startswith("hint:"):
            print(f"rankgrad {command}: {msg}", file=sys.stderr)
    total = sum(scan.counts.values())
    listed = "; ".join(f"{n} {cat}" for cat, n in scan.counts.most_common())
    more = "" if len(shown) >= total else f" (listed {len(shown)}; --max-errors 0 lists all)"
    print(f"rankgrad {command}: {total} problem(s) in {scan.spec.path}: {listed}{more}. Locations are "
          f"{scan.spec.where}. Nothing was written{written}.", file=sys.stderr)


# ------------------------------------------------------------------ formats
@dataclass(frozen=True)
class FileSpec:
    """A path with its format (``jsonl``/``csv``/``tsv``/``parquet``) and whether it is gzipped."""

    path: str
    fmt: str
    gz: bool

    @property
    def is_text(self) -> bool:
        return self.fmt != "parquet"

    @property
    def where(self) -> str:
        """How rows are located in messages."""
        if self.is_text:
            header = " (the header is line 1)" if self.fmt in ("csv", "tsv") else ""
            return f"1-based line numbers of {self.path}{header}"
        return f"0-based row indices of {self.path}"

    def loc(self, n: int) -> str:
        return f"{self.path}:{n}" if self.is_text else f"{self.path}: row {n}"


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
            raise CliError(f"{what} {path!r}: cannot tell the format from the extension (known: {exts}, "
                           "text formats also with .gz); pass --format/--output-format.")
    if fmt == "parquet" and gz:
        raise CliError(f"{what} {path!r}: Parquet is compressed internally; drop the .gz.")
    return FileSpec(path, fmt, gz)


# ----------------------------------------------------------- reading bytes
class _Counting(io.RawIOBase):
    """A raw reader that counts the bytes read from the file (for progress bars)."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self._f.readinto(b) or 0
        self.count += n
        return n

    def close(self) -> None:
        self._f.close()
        super().close()


@contextlib.contextmanager
def _open_binary(spec: FileSpec) -> Iterator[tuple[IO[bytes], _Counting]]:
    raw = _Counting(open(spec.path, "rb"))  # noqa: SIM115 - closed below
    buf: IO[bytes] = io.BufferedReader(raw, 1 << 20)
    try:
        yield (gzip.GzipFile(fileobj=buf, mode="rb") if spec.gz else buf), raw
    finally:
        buf.close()


def _open_text(spec: FileSpec) -> Any:
    """A context manager yielding (text file for csv, byte counter)."""

    @contextlib.contextmanager
    def cm() -> Iterator[tuple[IO[str], _Counting]]:
        with _open_binary(spec) as (b, counter):
            yield io.TextIOWrapper(b, encoding="utf-8-sig", newline=""), counter

    return cm()


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
    status: np.ndarray  # uint8 [B]: OK, MISSING, NULL, NAN, INF
    locs: np.ndarray  # int64 [B]: line (text, 1-based) or row index (Parquet, 0-based)
    labels: list[Any]  # group code → the key as found in the file
    problems: list[tuple[int, str]]  # fatal row problems (location, message), the first max_errors
    counts: Counter  # every problem by category (not capped)
    columns: list[str]  # column names in order of first appearance
    kinds: dict[str, set[str]] = field(default_factory=dict)  # JSONL → Parquet: value kinds per column
    samples: dict[str, list[Any]] = field(default_factory=dict)  # nested values to infer Arrow types

    @property
    def n_rows(self) -> int:
        return int(self.codes.shape[0])


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
        norm = (isinstance(key, str), key)  # "1" and 1 are different groups; 1 and 1.0 the same
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

    def finish(self, columns: list[str], **extra: Any) -> Scan:
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
         want_columns: bool, want_kinds: bool, max_errors: int, progress: bool) -> Scan:
    """Pass 1: read the group key and reward of every row (see :class:`Scan`)."""
    b = _Builder(spec, max_errors)
    if spec.fmt == "jsonl":
        return _scan_jsonl(b, group_key, reward_key, adv_key, overwrite, want_columns, want_kinds, progress)
    if spec.fmt in ("csv", "tsv"):
        return _scan_csv(b, group_key, reward_key, adv_key, overwrite, progress)
    return _scan_parquet(b, group_key, reward_key, adv_key, overwrite, progress)


def _scan_jsonl(b: _Builder, gk: str, rk: str, ak: str, overwrite: bool, want_columns: bool,
                want_kinds: bool, progress: bool) -> Scan:
    columns: dict[str, None] = {}
    kinds: dict[str, set[str]] = {}
    samples: dict[str, list[Any]] = {}
    with _open_binary(b.spec) as (f, counter), \
            Progress(progress, _size(b.spec), "pass 1/2 read", "B", unit_scale=True) as bar:
        lineno, seen = 0, 0
        for raw in f:
            lineno += 1
            if lineno % 4096 == 0:
                bar.update(counter.count - seen)
                seen = counter.count
            if not raw.strip():
                continue
            try:
                obj = _json_decode(raw.decode("utf-8"))
            except ValueError as err:  # JSONDecodeError and UnicodeDecodeError
                msg = f"{err.msg} (column {err.colno})" if isinstance(err, json.JSONDecodeError) else str(err)
                b.problem(lineno, "malformed JSON", f"malformed JSON: {msg}")
                b.add(lineno, -1, BAD, math.nan)
                continue
            if not isinstance(obj, dict):
                b.problem(lineno, "not a JSON object", f"expected a JSON object, got {type(obj).__name__}")
                b.add(lineno, -1, BAD, math.nan)
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
    return b.finish(list(columns), kinds=kinds, samples=samples)


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
    return b.code(v)


def _json_reward(b: _Builder, loc: int, obj: dict, rk: str) -> tuple[int, float]:
    if rk not in obj:
        return MISSING, math.nan
    v = obj[rk]
    if v is None:
        return NULL, math.nan
    if isinstance(v, (bool, int, float)):
        x = float(v)
        return _float_status(x), x
    b.problem(loc, "non-numeric reward", f"reward {rk!r} = {_short(v)} is not a number (or true/false)")
    return BAD, math.nan


def _short(v: Any) -> str:
    s = json.dumps(v, ensure_ascii=False, default=str)
    return s if len(s) <= 40 else s[:37] + "..."


def _csv_reward(b: _Builder, loc: int, text: str, rk: str) -> tuple[int, float]:
    t = text.strip()
    if t.lower() in _CSV_NULLS:
        return NULL, math.nan
    try:
        x = float(t)
    except ValueError:
        low = t.lower()
        if low in ("true", "false"):
            return OK, float(low == "true")
        b.problem(loc, "non-numeric reward", f"reward {rk!r} = {_short(text)} is not a number")
        return BAD, math.nan
    return _float_status(x), x


def _csv_header(reader: Any, spec: FileSpec) -> list[str]:
    for row in reader:
        if row:
            return row
    raise CliError(f"{spec.path}: the file is empty (expected a header row).", EXIT_DATA)


def _require_columns(spec: FileSpec, columns: list[str], keys: dict[str, str]) -> None:
    for opt, key in keys.items():
        if key not in columns:
            raise CliError(f"{spec.path}: no column {key!r} (columns: {', '.join(columns)}); see {opt}.",
                           EXIT_DATA)


def _scan_csv(b: _Builder, gk: str, rk: str, ak: str, overwrite: bool, progress: bool) -> Scan:
    with _open_text(b.spec) as (f, counter), \
            Progress(progress, _size(b.spec), "pass 1/2 read", "B", unit_scale=True) as bar:
        reader = csv.reader(f, delimiter=_delimiter(b.spec.fmt))
        header = _csv_header(reader, b.spec)
        _require_columns(b.spec, header, {"--group-key": gk, "--reward-key": rk})
        if ak in header and not overwrite:
            raise CliError(f"{b.spec.path}: column {ak!r} already exists; pass --advantage-key NAME or "
                           "--overwrite.", EXIT_DATA)
        gi, ri, width = header.index(gk), header.index(rk), len(header)
        prev, seen = reader.line_num, 0
        for n, row in enumerate(reader):
            loc, prev = prev + 1, reader.line_num
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
    return b.finish(header)


def _scan_parquet(b: _Builder, gk: str, rk: str, ak: str, overwrite: bool, progress: bool) -> Scan:
    pa = require("pyarrow", "parquet", "reading Parquet")
    pq = require("pyarrow.parquet", "parquet", "reading Parquet")
    pc = require("pyarrow.compute", "parquet", "reading Parquet")
    pf = pq.ParquetFile(b.spec.path)
    names = list(pf.schema_arrow.names)
    _require_columns(b.spec, names, {"--group-key": gk, "--reward-key": rk})
    if ak in names and not overwrite:
        raise CliError(f"{b.spec.path}: column {ak!r} already exists; pass --advantage-key NAME or "
                       "--overwrite.", EXIT_DATA)
    rtype, gtype = pf.schema_arrow.field(rk).type, pf.schema_arrow.field(gk).type
    if not (pa.types.is_integer(rtype) or pa.types.is_floating(rtype) or pa.types.is_boolean(rtype)
            or pa.types.is_decimal(rtype)):
        raise CliError(f"{b.spec.path}: reward column {rk!r} has type {rtype}; expected numbers or booleans.",
                       EXIT_DATA)
    if pa.types.is_nested(gtype):
        raise CliError(f"{b.spec.path}: group column {gk!r} has nested type {gtype}; expected strings or "
                       "numbers.", EXIT_DATA)
    codes, rewards, status, offset = [], [], [], 0
    with Progress(progress, pf.metadata.num_rows, "pass 1/2 read", "rows", unit_scale=True) as bar:
        for batch in pf.iter_batches(batch_size=_CHUNK, columns=[gk, rk]):
            n = batch.num_rows
            g, r = batch.column(0), batch.column(1)
            x = r.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64, copy=True)
            null = r.is_null().to_numpy(zero_copy_only=False)
            st = np.full(n, OK, dtype=np.uint8)
            st[np.isinf(x)] = INF
            st[np.isnan(x)] = NAN
            st[null] = NULL
            x[st != OK] = np.nan
            enc = g if pa.types.is_dictionary(g.type) else pc.dictionary_encode(g)
            idx = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
            lut = np.array([b.code(v) for v in enc.dictionary.to_pylist()] + [-1], dtype=np.int64)
            c = lut[idx]  # idx −1 → the trailing −1
            for i in np.flatnonzero(c < 0):
                b.problem(offset + int(i), "missing group key", f"group key {gk!r} is null")
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
    )


# ------------------------------------------------------------- pass 2: write
@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """A temporary path next to ``path`` that replaces it on success and is removed on any failure."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".rankgrad-tmp", dir=folder)
    os.close(fd)
    try:
        yield tmp
        if os.path.exists(path):
            mode = os.stat(path).st_mode & 0o7777
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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
    return repr(float(a))


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
    """Pass 2: write every input row, unchanged, plus ``adv_key`` = ``adv`` (file order) to ``out``
    atomically."""
    with atomic_path(out.path) as tmp:
        tmp_spec = FileSpec(tmp, out.fmt, out.gz)
        with Progress(progress, src.n_rows, "pass 2/2 write", "rows", unit_scale=True) as bar:
            inp = src.spec
            if inp.fmt == "jsonl" and out.fmt == "jsonl":
                n = _jsonl_to_jsonl(inp, tmp_spec, adv, adv_key, overwrite, bar)
            elif inp.fmt in ("csv", "tsv") and out.fmt in ("csv", "tsv"):
                n = _csv_to_csv(inp, tmp_spec, adv, adv_key, bar)
            elif inp.fmt == "parquet" and out.fmt == "parquet":
                n = _parquet_to_parquet(inp, tmp_spec, adv, adv_key, bar)
            else:
                n = _generic(src, tmp_spec, adv, adv_key, bar)
        if n != src.n_rows:
            raise CliError(f"{inp.path} changed while it was read ({src.n_rows} rows in pass 1, {n} in "
                           "pass 2); nothing written.", EXIT_DATA)


def _jsonl_to_jsonl(inp: FileSpec, out: FileSpec, adv: np.ndarray, ak: str, overwrite: bool,
                    bar: Progress) -> int:
    """Splice ``, "key": value`` before each object's closing brace, so the row's bytes stay exactly as
    they were. With ``overwrite`` the rows are parsed and re-serialised (the key keeps its position)."""
    key = json.dumps(ak, ensure_ascii=False).encode()
    n = 0
    with _open_binary(inp) as (f, _), _out_binary(out.path, out.gz) as w:
        for raw in f:
            body = raw.strip()
            if not body:
                continue
            a = float(adv[n]) if n < adv.shape[0] else 0.0
            if overwrite:
                obj = _json_decode(body.decode("utf-8"))
                obj[ak] = a
                w.write(json.dumps(obj, ensure_ascii=False).encode() + b"\n")
            else:
                inner = body[:-1].rstrip()  # pass 1 checked that every row is one JSON object
                sep = b"" if inner == b"{" else b", "
                w.write(inner + sep + key + b": " + _num(a).encode() + b"}\n")
            n += 1
            if n % 4096 == 0:
                bar.update(4096)
    return n


def _csv_to_csv(inp: FileSpec, out: FileSpec, adv: np.ndarray, ak: str, bar: Progress) -> int:
    n = 0
    with _open_text(inp) as (f, _), _out_text(out.path, out.gz) as w:
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


def _parquet_to_parquet(inp: FileSpec, out: FileSpec, adv: np.ndarray, ak: str, bar: Progress) -> int:
    pa = require("pyarrow", "parquet", "writing Parquet")
    pq = require("pyarrow.parquet", "parquet", "writing Parquet")
    pf = pq.ParquetFile(inp.path)
    schema = pf.schema_arrow
    fld = pa.field(ak, pa.float64())
    pos = schema.get_field_index(ak)
    new_schema = schema.set(pos, fld) if pos >= 0 else schema.append(fld)
    n = 0
    with pq.ParquetWriter(out.path, new_schema, compression=_compression(pf)) as writer:
        for batch in pf.iter_batches(batch_size=_CHUNK):
            col = pa.array(adv[n : n + batch.num_rows], pa.float64())
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
def _dict_chunks(spec: FileSpec) -> Iterator[list[dict[str, Any]]]:
    """The input rows as dicts, in chunks (pass 1 has validated them)."""
    if spec.fmt == "jsonl":
        with _open_binary(spec) as (f, _):
            chunk: list[dict[str, Any]] = []
            for raw in f:
                if raw.strip():
                    chunk.append(_json_decode(raw.decode("utf-8")))
                    if len(chunk) == _CHUNK:
                        yield chunk
                        chunk = []
            if chunk:
                yield chunk
    elif spec.fmt in ("csv", "tsv"):
        with _open_text(spec) as (f, _):
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
        pq = require("pyarrow.parquet", "parquet", "reading Parquet")
        for batch in pq.ParquetFile(spec.path).iter_batches(batch_size=_CHUNK):
            yield batch.to_pylist()


def _generic(src: Scan, out: FileSpec, adv: np.ndarray, ak: str, bar: Progress) -> int:
    columns = list(src.columns)
    if ak not in columns:
        columns.append(ak)
    n = 0
    if out.fmt == "jsonl":
        with _out_binary(out.path, out.gz) as w:
            for chunk in _dict_chunks(src.spec):
                lines = []
                for row in chunk:
                    row[ak] = float(adv[n])
                    n += 1
                    lines.append(json.dumps(row, ensure_ascii=False, default=_json_default))
                w.write(("\n".join(lines) + "\n").encode())
                bar.update(len(chunk))
    elif out.fmt in ("csv", "tsv"):
        with _out_text(out.path, out.gz) as t:
            writer = csv.writer(t, delimiter=_delimiter(out.fmt), lineterminator="\n")
            writer.writerow(columns)
            for chunk in _dict_chunks(src.spec):
                for row in chunk:
                    row[ak] = _num(adv[n])
                    n += 1
                    writer.writerow([_cell(row.get(c)) for c in columns])
                bar.update(len(chunk))
    else:
        n = _generic_parquet(src, out, columns, adv, ak, bar)
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
                     bar: Progress) -> int:
    pa = require("pyarrow", "parquet", "writing Parquet")
    pq = require("pyarrow.parquet", "parquet", "writing Parquet")
    schema, as_text = _arrow_schema(src, columns, ak)
    n = 0
    with pq.ParquetWriter(out.path, schema) as writer:
        for chunk in _dict_chunks(src.spec):
            arrays = []
            for fld in schema:
                c = fld.name
                if c == ak:
                    vals: list[Any] = adv[n : n + len(chunk)].tolist()
                elif c in as_text:
                    vals = [None if (v := row.get(c)) is None else v if isinstance(v, str)
                            else json.dumps(v, ensure_ascii=False, default=_json_default) for row in chunk]
                else:
                    vals = [row.get(c) for row in chunk]
                try:
                    arrays.append(pa.array(vals, type=fld.type))
                except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
                    raise CliError(f"column {c!r}: its values do not fit one Parquet type ({err}); "
                                   "write JSONL instead.", EXIT_DATA) from None
            writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
            n += len(chunk)
            bar.update(len(chunk))
    return n
