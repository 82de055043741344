"""Read catalog files (CSV, JSONL, Parquet) into validated items, reporting every bad row.

Line numbers are 1-based physical lines of the file (for CSV, the line a record starts on; the
header is line 1). For Parquet, ``line`` is the 1-based row number.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "items.jsonl"
>>> _ = path.write_text('{"item_id": "a", "title": "A"}\\n{"item_id": "a", "title": "B"}\\n')
>>> result = load_items(path, on_error="skip")
>>> [i.item_id for i in result.items], str(result.rejected[0])
(['a'], "line 2: item_id='a': duplicate item_id (first seen on line 1)")
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from shopkeep.catalog.mapping import ColumnMapping
from shopkeep.catalog.schema import parse_item
from shopkeep.errors import ValidationError
from shopkeep.types import Item

__all__ = ["FORMATS", "MAX_LINE_BYTES", "LoadResult", "RowError", "detect_format", "load_items"]

MAX_LINE_BYTES = 1_000_000
FORMATS = ("csv", "jsonl", "parquet")
_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet"}

Progress = Callable[[int, int], None]
Row = tuple[int, "Mapping[str, Any] | RowError"]


@dataclass(frozen=True, slots=True)
class RowError:
    """One rejected row: where (``line``), which ``field``, the offending ``value`` and why."""

    line: int
    field: str
    value: Any
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}={self.value!r}: {self.reason}"


@dataclass(frozen=True, slots=True)
class LoadResult:
    """Items read from a file and the rows refused. In ``reject`` mode ``items`` is empty when any
    row was refused (``valid`` still counts the good rows)."""

    items: tuple[Item, ...]
    rejected: tuple[RowError, ...]
    rows: int
    valid: int
    on_error: str = "reject"
    counts: Mapping[str, int] = field(init=False)

    def __post_init__(self) -> None:
        counts = {"rows": self.rows, "valid": self.valid, "rejected": len(self.rejected), "items": len(self.items)}
        object.__setattr__(self, "counts", counts)

    @property
    def ok(self) -> bool:
        """True when no row was refused."""
        return not self.rejected


def detect_format(path: str | Path, format: str | None = None) -> str:
    """``format`` if given, else the one named by the file suffix."""
    if format is not None:
        if format not in FORMATS:
            raise ValidationError("format", format, f"must be one of {', '.join(FORMATS)}")
        return format
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIXES:
        raise ValidationError("format", suffix or str(path), "unknown file suffix; pass format= (csv, jsonl, parquet)")
    return _SUFFIXES[suffix]


class _Lines:
    """Physical lines of a binary file, decoded strictly as UTF-8; bad lines are recorded, not raised."""

    def __init__(self, fh: IO[bytes], max_bytes: int, total: int, progress: Progress | None) -> None:
        self.fh, self.max_bytes, self.total, self.progress = fh, max_bytes, total, progress
        self.line = 0
        self.done = 0
        self.bad: dict[int, RowError] = {}

    def __iter__(self) -> Iterator[str]:
        while raw := self.fh.readline(self.max_bytes + 2):
            self.line += 1
            self.done += len(raw)
            if len(raw.rstrip(b"\r\n")) > self.max_bytes:
                while not raw.endswith(b"\n") and (raw := self.fh.readline(1 << 16)):
                    self.done += len(raw)
                self.bad[self.line] = RowError(self.line, "<line>", None,
                                               f"line is longer than {self.max_bytes} bytes")
                yield "\n"
                continue
            if self.progress is not None and self.line % 1000 == 0:
                self.progress(self.done, self.total)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                self.bad[self.line] = RowError(self.line, "<encoding>", raw[exc.start:exc.start + 4],
                                               f"not valid UTF-8 at byte {exc.start + 1} of the line")
                text = raw.decode("utf-8", "replace")
            yield text.removeprefix("\ufeff") if self.line == 1 else text
        if self.progress is not None:
            self.progress(self.done, self.total)


def _csv_rows(lines: _Lines) -> Iterator[Row]:
    csv.field_size_limit(max(csv.field_size_limit(), lines.max_bytes + 1))
    reader = csv.reader(iter(lines), strict=False)
    header: list[str] | None = None
    last = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, RowError(reader.line_num, "<csv>", None, f"malformed CSV: {exc}")
            last = reader.line_num
            continue
        start, last = last + 1, reader.line_num
        bad = [n for n in range(start, last + 1) if n in lines.bad]
        if header is None and bad:
            err = lines.bad[bad[0]]
            raise ValidationError(err.field, err.value, f"in the CSV header: {err.reason}", line=err.line)
        if bad or not cells:
            continue
        if header is None:
            header = [c.strip() for c in cells]
            if len(set(header)) != len(header):
                dup = next(c for c in header if header.count(c) > 1)
                raise ValidationError("columns", dup, "appears twice in the CSV header", line=start)
            yield 0, {"__header__": header}
            continue
        if len(cells) != len(header):
            yield start, RowError(start, "<row>", f"{len(cells)} cells", f"the header has {len(header)} columns")
            continue
        yield start, {h: (c if c.strip() else None) for h, c in zip(header, cells, strict=True)}


def _jsonl_rows(lines: _Lines) -> Iterator[Row]:
    for text in lines:
        n = lines.line
        if n in lines.bad or not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            yield n, RowError(n, "<json>", text.strip()[:80], f"malformed JSON: {exc.msg} (column {exc.colno})")
            continue
        if not isinstance(obj, dict):
            yield n, RowError(n, "<json>", text.strip()[:80], "each line must be a JSON object")
            continue
        yield n, obj


def _parquet_rows(path: Path, progress: Progress | None) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a corrupt file
        raise ValidationError("file", str(path), f"is not a readable Parquet file: {exc}") from None
    total = pf.metadata.num_rows
    yield 0, {"__header__": list(pf.schema_arrow.names)}
    n = 0
    for batch in pf.iter_batches(batch_size=10_000):
        for row in batch.to_pylist():
            n += 1
            yield n, row
        if progress is not None:
            progress(n, total)


def _resolve_mapping(mapping: ColumnMapping | None, columns: list[str]) -> ColumnMapping:
    if mapping is None:
        return ColumnMapping.identity(columns)
    missing = sorted(mapping.columns() - set(columns))
    if missing:
        raise ValidationError("columns", missing[0], f"is named in the mapping but absent from the file "
                                                     f"(missing: {', '.join(missing)})", line=1)
    return mapping


def _rows(path: Path, fmt: str, max_line_bytes: int, progress: Progress | None) -> Iterator[Row]:
    if fmt == "parquet":
        yield from _parquet_rows(path, progress)
        return
    with path.open("rb") as fh:
        lines = _Lines(fh, max_line_bytes, path.stat().st_size, progress)
        rows = _csv_rows(lines) if fmt == "csv" else _jsonl_rows(lines)
        reported: set[int] = set()
        for n, row in rows:
            for bad in sorted(set(lines.bad) - reported):
                reported.add(bad)
                yield bad, lines.bad[bad]
            yield n, row
        for bad in sorted(set(lines.bad) - reported):
            yield bad, lines.bad[bad]


def load_items(
    path: str | Path,
    *,
    format: str | None = None,
    mapping: ColumnMapping | None = None,
    on_error: str = "reject",
    max_line_bytes: int = MAX_LINE_BYTES,
    progress: Progress | None = None,
) -> LoadResult:
    """Read every row of a catalog file, validate it, and report each bad row with its line.

    ``on_error="reject"``: any bad row empties ``items`` (so nothing gets stored); ``"skip"``: the
    good rows are kept. A repeated ``item_id`` is a bad row (the later one), and so is an
    ``image_vector`` whose length differs from the first one in the file. ``progress(done, total)``
    is called now and then (bytes, or rows for Parquet).
    """
    if on_error not in ("reject", "skip"):
        raise ValidationError("on_error", on_error, "must be reject or skip")
    p = Path(path)
    fmt = detect_format(p, format)
    if not p.is_file():
        raise ValidationError("file", str(p), "does not exist or is not a file")
    active = mapping if fmt == "jsonl" else None
    currency = mapping.currency if mapping is not None else "USD"
    items: list[Item] = []
    first_line: dict[str, int] = {}
    dims: tuple[int, int] | None = None  # (image vector dimension, line that set it)
    rejected: list[RowError] = []
    rows = 0
    for n, row in _rows(p, fmt, max_line_bytes, progress):
        if isinstance(row, RowError):
            rows += 1
            rejected.append(row)
            continue
        if "__header__" in row:
            active = _resolve_mapping(mapping, list(row["__header__"]))
            continue
        rows += 1
        try:
            raw = active.to_raw(row) if active is not None else row
            item = parse_item(raw, line=n, default_currency=currency)
        except ValidationError as exc:
            rejected.append(RowError(n, exc.field, exc.value, exc.reason))
            continue
        if item.item_id in first_line:
            rejected.append(RowError(n, "item_id", item.item_id,
                                     f"duplicate item_id (first seen on line {first_line[item.item_id]})"))
            continue
        if item.image_vector is not None:
            dims = dims or (len(item.image_vector), n)
            if len(item.image_vector) != dims[0]:
                rejected.append(RowError(n, "image_vector", f"{len(item.image_vector)} numbers",
                                         f"expected {dims[0]} numbers (the dimension of line {dims[1]})"))
                continue
        first_line[item.item_id] = n
        items.append(item)
    rejected.sort(key=lambda e: e.line)
    kept = tuple(items) if on_error == "skip" or not rejected else ()
    return LoadResult(kept, tuple(rejected), rows, len(items), on_error)
