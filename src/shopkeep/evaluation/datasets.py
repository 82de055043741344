"""Loaders for the research datasets used by the evaluation protocols.

Two formats (see shared/ARCHITECTURE.md, "Evaluation protocols"):

* ``seqrec`` — S3-Rec files ``<Name>.txt``: one user per line, ``user item item ...`` with 1-based
  integer item ids in time order. Optional ``<Name>_item2attributes.json`` (``{"item": [attr, ...]}``)
  and ``item_map.tsv`` (``s3rec_item_id<TAB>asin[<TAB>title]``) in the same folder add item features.
* ``sessions`` — SR-GNN split folder: ``train_sessions.txt`` (one session per line, item ids in
  time order) and ``test_prefix_label.tsv`` (header ``prefix<TAB>label``; prefix = space-separated ids).

Raw integer ids are mapped to dense indices ``0..n_items-1`` in ascending order of the raw id; the
raw ids are kept (as strings) in :attr:`Dataset.item_ids`.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "Tiny.txt").write_text("1 10 20 30\\n2 20 30 40\\n")
>>> ds = load_dataset(folder, "seqrec")
>>> ds.name, ds.n_items, ds.sequences[1].tolist(), ds.item_ids[0]
('Tiny', 4, [1, 2, 3], '10')
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from shopkeep.errors import ValidationError
from shopkeep.models.base import ItemFeatures

__all__ = ["Dataset", "DatasetFormat", "load_dataset", "load_seqrec", "load_sessions"]

DatasetFormat = Literal["seqrec", "sessions"]
IntArray = npt.NDArray[np.int64]

_TRAIN_SESSIONS = "train_sessions.txt"
_TEST_PREFIXES = "test_prefix_label.tsv"


@dataclass(frozen=True)
class Dataset:
    """A loaded dataset over dense item indices.

    ``sequences``: seqrec = each user's full sequence; sessions = the training sessions (file order).
    ``test_prefixes``/``test_labels``: the fixed sessions test cases (empty for seqrec).
    ``fingerprint``: the first 16 hex digits of the sha256 over the bytes of every file read.
    """

    name: str
    format: DatasetFormat
    sequences: tuple[IntArray, ...]
    n_items: int
    item_ids: tuple[str, ...]
    fingerprint: str
    features: ItemFeatures = field(default_factory=ItemFeatures)
    test_prefixes: tuple[IntArray, ...] = ()
    test_labels: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def n_interactions(self) -> int:
        """Interactions in :attr:`sequences`."""
        return int(sum(s.size for s in self.sequences))


def load_dataset(path: Path | str, format: DatasetFormat) -> Dataset:
    """Load a ``seqrec`` folder/file or a ``sessions`` split folder."""
    if format == "seqrec":
        return load_seqrec(path)
    if format == "sessions":
        return load_sessions(path)
    raise ValidationError("format", format, "must be 'seqrec' or 'sessions'")


def _parse_rows(text: str, source: str, *, skip_first: bool) -> list[list[int]]:
    """Split whitespace-separated integer rows; raise with the 1-based line number on bad tokens."""
    rows: list[list[int]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            row = [int(p) for p in parts]
        except ValueError:
            bad = next(p for p in parts if not p.lstrip("-").isdigit())
            raise ValidationError(source, bad, "is not an integer id", line=lineno) from None
        if skip_first:
            if len(row) < 2:
                raise ValidationError(source, line, "needs a user id and at least one item", line=lineno)
            row = row[1:]
        if min(row) < 0:
            raise ValidationError(source, min(row), "ids must be >= 0", line=lineno)
        rows.append(row)
    return rows


def _read(path: Path, digest: hashlib._Hash) -> str:
    if not path.is_file():
        raise ValidationError("path", str(path), "file not found")
    data = path.read_bytes()
    digest.update(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ValidationError(str(path), data[exc.start : exc.start + 8], "is not UTF-8", line=line) from None


def _densify(rows: Iterable[list[int]]) -> tuple[IntArray, dict[int, int]]:
    """Sorted unique raw ids and the raw -> dense index mapping."""
    flat = np.fromiter((i for row in rows for i in row), dtype=np.int64)
    uniq = np.unique(flat)
    return uniq, {int(raw): idx for idx, raw in enumerate(uniq.tolist())}


def _to_arrays(rows: Sequence[list[int]], uniq: IntArray) -> tuple[IntArray, ...]:
    if not rows:
        return ()
    flat = np.fromiter((i for row in rows for i in row), dtype=np.int64)
    dense = np.searchsorted(uniq, flat)
    bounds = np.cumsum([len(r) for r in rows])[:-1]
    return tuple(np.split(dense, bounds))


def load_seqrec(path: Path | str) -> Dataset:
    """Load an S3-Rec ``<Name>.txt`` (a file, or the folder holding exactly one such file)."""
    file = _seqrec_file(Path(path))
    digest = hashlib.sha256()
    rows = _parse_rows(_read(file, digest), file.name, skip_first=True)
    if not rows:
        raise ValidationError(file.name, "", "no sequences in file")
    uniq, _ = _densify(rows)
    features = _seqrec_features(file, uniq, digest)
    return Dataset(
        name=file.stem,
        format="seqrec",
        sequences=_to_arrays(rows, uniq),
        n_items=int(uniq.size),
        item_ids=tuple(str(i) for i in uniq.tolist()),
        fingerprint=digest.hexdigest()[:16],
        features=features,
    )


def _seqrec_file(path: Path) -> Path:
    if path.is_file():
        return path
    if not path.is_dir():
        raise ValidationError("path", str(path), "no such file or folder")
    candidates = [p for p in sorted(path.glob("*.txt")) if p.name != "user_sequence_asin.txt"]
    if len(candidates) != 1:
        raise ValidationError("path", str(path), f"expected one <Name>.txt in the folder, found {len(candidates)}")
    return candidates[0]


def _seqrec_features(file: Path, uniq: IntArray, digest: hashlib._Hash) -> ItemFeatures:
    """Attributes and titles from the optional side files (empty when absent)."""
    index = {str(raw): i for i, raw in enumerate(uniq.tolist())}
    attrs_file = file.with_name(f"{file.stem}_item2attributes.json")
    attributes: tuple[IntArray, ...] = ()
    n_attributes = 0
    if attrs_file.is_file():
        try:
            raw = json.loads(_read(attrs_file, digest))
        except json.JSONDecodeError as exc:
            raise ValidationError(attrs_file.name, exc.msg, "is not valid JSON", line=exc.lineno) from None
        if not isinstance(raw, dict):
            raise ValidationError(attrs_file.name, type(raw).__name__, "must be an object {item: [attr, ...]}")
        per_item: list[list[int]] = [[] for _ in range(uniq.size)]
        for key, values in raw.items():
            if key in index:
                per_item[index[key]] = [int(v) for v in values]
        attr_uniq, _ = _densify(per_item)
        n_attributes = int(attr_uniq.size)
        attributes = tuple(np.searchsorted(attr_uniq, np.asarray(a, dtype=np.int64)) for a in per_item)
    titles: tuple[str, ...] = ()
    map_file = file.with_name("item_map.tsv")
    if map_file.is_file():
        found = [""] * uniq.size
        for line in _read(map_file, digest).splitlines()[1:]:
            cols = line.split("\t")
            if len(cols) >= 3 and cols[0] in index:
                found[index[cols[0]]] = cols[2]
        titles = tuple(found) if any(found) else ()
    return ItemFeatures(n_attributes=n_attributes, attributes=attributes, titles=titles)


def load_sessions(path: Path | str) -> Dataset:
    """Load an SR-GNN split folder (``train_sessions.txt`` + ``test_prefix_label.tsv``)."""
    folder = Path(path)
    digest = hashlib.sha256()
    train_rows = _parse_rows(_read(folder / _TRAIN_SESSIONS, digest), _TRAIN_SESSIONS, skip_first=False)
    prefixes, labels = _parse_test(_read(folder / _TEST_PREFIXES, digest))
    if not train_rows:
        raise ValidationError(_TRAIN_SESSIONS, "", "no sessions in file")
    uniq, _ = _densify([*train_rows, *prefixes, labels])
    name = folder.parent.name if folder.name == "srgnn_split" else folder.name
    return Dataset(
        name=name,
        format="sessions",
        sequences=_to_arrays(train_rows, uniq),
        n_items=int(uniq.size),
        item_ids=tuple(str(i) for i in uniq.tolist()),
        fingerprint=digest.hexdigest()[:16],
        test_prefixes=_to_arrays(prefixes, uniq),
        test_labels=np.searchsorted(uniq, np.asarray(labels, dtype=np.int64)),
    )


def _parse_test(text: str) -> tuple[list[list[int]], list[int]]:
    """Rows of ``prefix<TAB>label`` after the header."""
    lines = text.splitlines()
    if not lines or lines[0].strip().split("\t") != ["prefix", "label"]:
        raise ValidationError(_TEST_PREFIXES, lines[0] if lines else "", "header must be 'prefix<TAB>label'", line=1)
    prefixes: list[list[int]] = []
    labels: list[int] = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != 2:
            raise ValidationError(_TEST_PREFIXES, line, "expected 2 tab-separated columns", line=lineno)
        try:
            prefix = [int(p) for p in cols[0].split()]
            label = int(cols[1])
        except ValueError:
            raise ValidationError(_TEST_PREFIXES, line, "ids must be integers", line=lineno) from None
        if not prefix:
            raise ValidationError("prefix", cols[0], "must hold at least one item", line=lineno)
        if label < 0 or min(prefix) < 0:
            raise ValidationError(_TEST_PREFIXES, line, "ids must be >= 0", line=lineno)
        prefixes.append(prefix)
        labels.append(label)
    return prefixes, labels
