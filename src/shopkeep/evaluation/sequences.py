"""Build an evaluation :class:`~shopkeep.evaluation.datasets.Dataset` from string-id sequences.

Used for data that does not come from a benchmark file: the synthetic store, or a retailer's own event
log read back by :func:`shopkeep.pipeline.training.interaction_sequences`.

>>> ds = dataset_from_sequences("toy", {"u1": ["a", "b", "c"], "u2": ["b", "c", "d"], "u3": ["x"]})
>>> ds.n_items, len(ds.sequences), ds.item_ids
(4, 2, ('a', 'b', 'c', 'd'))
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

from shopkeep.errors import ValidationError
from shopkeep.evaluation.datasets import Dataset

__all__ = ["dataset_from_sequences"]


def dataset_from_sequences(name: str, sequences: Mapping[str, Sequence[str]], *, min_length: int = 3) -> Dataset:
    """A seqrec-format dataset over the shoppers with at least ``min_length`` items (in key order).

    Item indices follow the sorted item ids of the kept sequences; the fingerprint is a sha256 over
    the sequences, so the same data always gives the same fingerprint.
    """
    if min_length < 3:
        raise ValidationError("min_length", min_length, "leave-one-out needs >= 3 items per sequence")
    kept = [(key, list(seq)) for key, seq in sorted(sequences.items()) if len(seq) >= min_length]
    if not kept:
        raise ValidationError("sequences", len(sequences), f"no sequence has >= {min_length} items")
    item_ids = tuple(sorted({item for _, seq in kept for item in seq}))
    index = {item: i for i, item in enumerate(item_ids)}
    digest = hashlib.sha256()
    arrays = []
    for key, seq in kept:
        digest.update(f"{key}\t{' '.join(seq)}\n".encode())
        arrays.append(np.fromiter((index[i] for i in seq), dtype=np.int64, count=len(seq)))
    return Dataset(
        name=name,
        format="seqrec",
        sequences=tuple(arrays),
        n_items=len(item_ids),
        item_ids=item_ids,
        fingerprint=digest.hexdigest()[:16],
    )
