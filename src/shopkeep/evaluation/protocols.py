"""The two evaluation protocols of shared/ARCHITECTURE.md, as train / validation / test splits.

**seqrec** (leave-one-out, S3-Rec/ICLRec): per user the last item is the test target, the second
last the validation target, the rest is the train part. Models fit on the train parts; validation
input = train part, target = validation item; test input = train part + validation item. Ranking is
over ALL items with the input history masked out (score ``-inf``).

Masking choice: like the S3-Rec/ICLRec code (``rating_pred[train_matrix > 0] = 0`` with every item
before the target in the matrix), the *whole* history is masked, the target included when it repeats
an earlier item — so a repeated target is a miss. Not un-masking the target keeps the evaluation from
using knowledge of the answer. On the Beauty and Toys files no test or validation target repeats an
item of its history, so the choice does not change any number there; the popularity gate
(tests/evaluation/test_published_pop.py) reproduces the published figures with it.

**sessions** (SR-GNN split): test = every row of ``test_prefix_label.tsv`` (prefix -> label), ranked
over all items with the history NOT masked (a fifth of the labels repeat a prefix item). For early
stopping, the last 10% of the training sessions (file order = time order) are held out as the
validation split: every prefix of a held-out session predicts its next item; models fit on the first
90%.

``refit_train``: the train data plus the validation targets (seqrec: each user's sequence without
the test item; sessions: all training sessions). The runner refits on it, before the test phase, only
models that declare ``refit_on_validation = True`` (closed-form baselines). This never contains a test
target.

>>> from shopkeep.evaluation.datasets import Dataset
>>> ds = Dataset("t", "seqrec", (np.array([0, 1, 2, 3]), np.array([2, 3])), 4, ("a", "b", "c", "d"), "x")
>>> split = leave_one_out(ds)
>>> [s.tolist() for s in split.fit_train.sequences], split.validation.targets.tolist()
([[0, 1]], [2])
>>> [h.tolist() for h in split.test.histories], split.test.targets.tolist()
([[0, 1, 2], [2]], [3, 3])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from shopkeep.errors import ValidationError
from shopkeep.evaluation.datasets import Dataset
from shopkeep.models.base import Interactions

__all__ = [
    "PROTOCOLS",
    "Cases",
    "ProtocolName",
    "Split",
    "leave_one_out",
    "make_split",
    "prefix_cases",
    "session_split",
]

IntArray = npt.NDArray[np.int64]
ProtocolName = Literal["seqrec", "sessions"]
PROTOCOLS: tuple[ProtocolName, ...] = ("seqrec", "sessions")

#: Share of training sessions (the most recent ones) held out for validation in the sessions protocol.
SESSION_VALIDATION_SHARE = 0.1


@dataclass(frozen=True)
class Cases:
    """Evaluation cases: input histories, one target each, and whether history items are masked."""

    histories: tuple[IntArray, ...]
    targets: IntArray
    exclude_history: bool
    n_items: int

    def __len__(self) -> int:
        return len(self.histories)

    def truncated(self, h: int | None) -> Cases:
        """The same cases with each history cut to its last ``h`` items (``None``: unchanged)."""
        if h is None:
            return self
        if h <= 0:
            raise ValidationError("truncate", h, "must be a positive number of items")
        return Cases(tuple(x[-h:] for x in self.histories), self.targets, self.exclude_history, self.n_items)

    def subsample(self, n: int | None, seed: int) -> Cases:
        """At most ``n`` cases drawn without replacement (seeded); ``None`` or enough: unchanged."""
        if n is None or n >= len(self):
            return self
        keep = np.sort(np.random.default_rng(seed).choice(len(self), size=n, replace=False))
        return Cases(tuple(self.histories[i] for i in keep), self.targets[keep], self.exclude_history, self.n_items)


@dataclass(frozen=True)
class Split:
    """What a protocol hands to the runner."""

    protocol: ProtocolName
    fit_train: Interactions
    refit_train: Interactions
    validation: Cases
    test: Cases


def make_split(dataset: Dataset, protocol: ProtocolName) -> Split:
    """The split of ``dataset`` under ``protocol`` (which must match the dataset's format)."""
    if protocol not in PROTOCOLS:
        raise ValidationError("protocol", protocol, f"must be one of {', '.join(PROTOCOLS)}")
    if protocol != dataset.format:
        raise ValidationError("protocol", protocol, f"dataset {dataset.name!r} is in the {dataset.format!r} format")
    return leave_one_out(dataset) if protocol == "seqrec" else session_split(dataset)


def _interactions(seqs: Sequence[IntArray], dataset: Dataset) -> Interactions:
    return Interactions(tuple(s for s in seqs if s.size), dataset.n_items, dataset.features)


def leave_one_out(dataset: Dataset) -> Split:
    """seqrec leave-one-out; users with fewer than 3 items give no validation case (2: test only)."""
    seqs = dataset.sequences
    val = [s for s in seqs if s.size >= 3]
    test = [s for s in seqs if s.size >= 2]
    empty = np.zeros(0, dtype=np.int64)
    return Split(
        protocol="seqrec",
        fit_train=_interactions([s[:-2] if s.size >= 3 else empty for s in seqs], dataset),
        refit_train=_interactions([s[:-1] for s in seqs], dataset),
        validation=Cases(
            tuple(s[:-2] for s in val), np.array([s[-2] for s in val], dtype=np.int64), True, dataset.n_items
        ),
        test=Cases(tuple(s[:-1] for s in test), np.array([s[-1] for s in test], dtype=np.int64), True, dataset.n_items),
    )


def prefix_cases(sessions: Sequence[IntArray], n_items: int) -> Cases:
    """Every (prefix -> next item) of each session, history not masked."""
    histories = [s[:i] for s in sessions for i in range(1, s.size)]
    targets = np.array([s[i] for s in sessions for i in range(1, s.size)], dtype=np.int64)
    return Cases(tuple(histories), targets, False, n_items)


def session_split(dataset: Dataset) -> Split:
    """sessions protocol: fixed test rows; the last 10% of training sessions validate."""
    seqs = dataset.sequences
    n_val = math.ceil(len(seqs) * SESSION_VALIDATION_SHARE) if len(seqs) > 1 else 0
    head, tail = seqs[: len(seqs) - n_val], seqs[len(seqs) - n_val :]
    return Split(
        protocol="sessions",
        fit_train=_interactions(head, dataset),
        refit_train=_interactions(seqs, dataset),
        validation=prefix_cases(tail, dataset.n_items),
        test=Cases(dataset.test_prefixes, dataset.test_labels, False, dataset.n_items),
    )
