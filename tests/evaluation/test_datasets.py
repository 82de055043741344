"""Dataset loaders: tiny files written here, malformed input, and the real shared files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shopkeep.errors import ValidationError
from shopkeep.evaluation.datasets import load_dataset, load_seqrec, load_sessions


def _seqrec(tmp_path: Path, text: str = "1 5 7 9\n2 7 9 11 5\n") -> Path:
    (tmp_path / "Shop.txt").write_text(text)
    return tmp_path


def test_seqrec_maps_raw_ids_to_dense_indices(tmp_path: Path) -> None:
    ds = load_seqrec(_seqrec(tmp_path))
    assert ds.name == "Shop" and ds.format == "seqrec" and ds.n_items == 4
    assert ds.item_ids == ("5", "7", "9", "11")
    assert [s.tolist() for s in ds.sequences] == [[0, 1, 2], [1, 2, 3, 0]]
    assert ds.features.n_attributes == 0 and ds.features.titles == ()


def test_seqrec_side_files_become_item_features(tmp_path: Path) -> None:
    _seqrec(tmp_path)
    (tmp_path / "Shop_item2attributes.json").write_text(json.dumps({"5": [100, 3], "9": [3], "42": [8]}))
    (tmp_path / "item_map.tsv").write_text("s3rec_item_id\tasin\ttitle\n5\tA\tLipstick\n11\tB\tMascara\n")
    feats = load_seqrec(tmp_path).features
    assert feats.n_attributes == 2  # 3 and 100 (42 is not an item of the sequences)
    assert [a.tolist() for a in feats.attributes] == [[1, 0], [], [0], []]
    assert feats.titles == ("Lipstick", "", "", "Mascara")


def test_fingerprint_follows_the_bytes(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = load_seqrec(_seqrec(tmp_path / "a"))
    b = load_seqrec(_seqrec(tmp_path / "b", "1 5 7 9\n2 7 9 11 6\n"))
    assert len(a.fingerprint) == 16 and a.fingerprint != b.fingerprint


@pytest.mark.parametrize(
    ("text", "line"),
    [("1 2 3\n2 4 x\n", 2), ("1 2 3\n\n7\n", 3), ("1 2 -3\n", 1)],
)
def test_malformed_seqrec_names_the_line(tmp_path: Path, text: str, line: int) -> None:
    with pytest.raises(ValidationError) as err:
        load_seqrec(_seqrec(tmp_path, text))
    assert err.value.line == line


def _sessions(tmp_path: Path, test: str = "prefix\tlabel\n3 4\t9\n4\t3\n") -> Path:
    (tmp_path / "train_sessions.txt").write_text("3 4 5\n5 6\n4 3 3 7\n")
    (tmp_path / "test_prefix_label.tsv").write_text(test)
    return tmp_path


def test_sessions_train_and_test_share_one_index(tmp_path: Path) -> None:
    ds = load_sessions(_sessions(tmp_path))
    assert ds.format == "sessions" and ds.item_ids == ("3", "4", "5", "6", "7", "9")
    assert [s.tolist() for s in ds.sequences] == [[0, 1, 2], [2, 3], [1, 0, 0, 4]]
    assert [p.tolist() for p in ds.test_prefixes] == [[0, 1], [1]]
    assert ds.test_labels.tolist() == [5, 0]


@pytest.mark.parametrize(
    ("test", "line"),
    [("prefix\tlabels\n1\t2\n", 1), ("prefix\tlabel\n1 2\t3\n1 2 3\n", 3), ("prefix\tlabel\n1\tz\n", 2),
     ("prefix\tlabel\n\t4\n", 2)],
)
def test_malformed_sessions_test_file_names_the_line(tmp_path: Path, test: str, line: int) -> None:
    with pytest.raises(ValidationError) as err:
        load_sessions(_sessions(tmp_path, test))
    assert err.value.line == line


def test_missing_files_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        load_sessions(tmp_path)
    with pytest.raises(ValidationError):
        load_dataset(tmp_path, "csv")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        load_seqrec(tmp_path / "nope")


@pytest.mark.data
def test_real_files_load_with_the_documented_counts(shared_data: Path) -> None:
    beauty = load_dataset(shared_data / "amazon-beauty-5core-seq", "seqrec")
    digi = load_dataset(shared_data / "diginetica-cikm16" / "srgnn_split", "sessions")
    assert (len(beauty.sequences), beauty.n_items, beauty.n_interactions) == (22363, 12101, 198502)
    assert beauty.features.n_attributes > 0 and len(beauty.features.attributes) == beauty.n_items
    assert len(beauty.features.titles) == beauty.n_items
    assert digi.name == "diginetica-cikm16" and len(digi.sequences) == 186670
    assert len(digi.test_prefixes) == 60858 == digi.test_labels.size
    assert int(digi.test_labels.max()) < digi.n_items
    assert all(np.all(p < digi.n_items) for p in digi.test_prefixes[:100])
