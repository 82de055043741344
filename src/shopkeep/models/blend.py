"""SASRec + itemknn blend: per-row standardized scores mixed with a weight chosen on validation.

``score = w * z(sasrec) + (1 - w) * z(itemknn)`` where ``z`` standardizes each row (mean 0, std 1),
so the two members' very different score scales do not matter. ``fit`` trains both members on the
train part (SASRec early-stops on the caller's ``validate`` callback), then calls ``validate`` on the
blend once per weight in ``weights`` and keeps the best (``w = 0`` and ``w = 1`` are the members alone,
so on validation the blend is never worse than its better member). Without a callback it uses
``default_weight``. During that search SASRec's last hidden states are cached per history chunk (by
content), so each extra weight costs one matrix product instead of a transformer pass.

``refit(train)`` (called by the evaluation runner because ``refit_on_validation`` is true) returns a
blend with the *same* SASRec and weight and an itemknn refit on ``train`` (train + validation
targets): itemknn is closed-form and cheap, SASRec would have to be retrained from scratch.
``sasrec_session_knn`` can also fine-tune a copy of its transformer on that data for ``refit_epochs``
epochs (:meth:`SASRec.fine_tune`, continuing the decayed learning rate): for sessions the validation
part is the most recent tenth of the training data, the closest in time to the test sessions.

With a ``stacker`` configuration (the default of ``sasrec_session_knn``) and the runner's validate
callback, the blend instead picks the top candidates for a learned re-ranker fitted on the earlier
validation cases (:mod:`shopkeep.models.stacking`), kept only when it beats the blend and the knn member
on the later ones.

Artifacts: a directory with ``model.json`` (config, weight, validation scores per weight) and the
members' own artifacts in ``sasrec/`` and ``itemknn/`` (safetensors / npz, no pickle), plus
``stacker/`` (LightGBM's text model and popularity counts) when a stacker was kept.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch

from shopkeep.errors import ValidationError
from shopkeep.models.base import (
    FloatArray,
    IntArray,
    Interactions,
    LabeledValidate,
    ValidateFn,
    check_fitted,
)
from shopkeep.models.itemknn import ItemKNNRecommender, SessionKNNRecommender
from shopkeep.models.registry import read_artifact, write_artifact
from shopkeep.models.sasrec import SASRec, SASRecSession
from shopkeep.models.stacking import (
    CandidateStacker,
    StackInputs,
    candidate_features,
    mrr_at,
    stacked_scores,
)

__all__ = ["SASRecKNNBlend", "SASRecSessionKNNBlend", "zscore"]

#: SASRec member overrides: a shorter training cap than SASRec alone, so that SASRec training, the
#: weight search, validation and test stay within 20 minutes per seed on two busy CPU cores.
DEFAULT_SASREC: dict[str, Any] = {"max_train_seconds": 780.0}
DEFAULT_WEIGHTS: tuple[float, ...] = (0.0, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 1.0)


def zscore(scores: FloatArray) -> FloatArray:
    """Standardize each row to mean 0, std 1 (a constant row becomes all zeros).

    >>> [[round(float(v), 3) for v in row] for row in zscore(np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]))]
    [[-1.225, 0.0, 1.225], [0.0, 0.0, 0.0]]
    """
    scores = np.asarray(scores, dtype=np.float32)
    mean = scores.mean(axis=1, keepdims=True)
    std = scores.std(axis=1, keepdims=True)
    out: FloatArray = ((scores - mean) / np.maximum(std, 1e-12)).astype(np.float32)
    return out


def _content_key(histories: Sequence[IntArray]) -> bytes:
    """A digest of the histories' contents (lengths and items), used as a cache key."""
    digest = hashlib.blake2b(digest_size=16)
    for hist in histories:
        arr = np.ascontiguousarray(hist, dtype=np.int64)
        digest.update(arr.size.to_bytes(8, "little"))
        digest.update(arr.tobytes())
    return digest.digest()


class SASRecKNNBlend:
    """Score-level blend of SASRec and itemknn (see the module docstring)."""

    name = "sasrec_knn"
    refit_on_validation = True
    #: The member classes and the SASRec member's default overrides (subclasses change them).
    sasrec_class: type[SASRec] = SASRec
    knn_class: type[ItemKNNRecommender] = ItemKNNRecommender
    default_sasrec: dict[str, Any] = DEFAULT_SASREC

    def __init__(
        self,
        *,
        sasrec: dict[str, Any] | None = None,
        itemknn: dict[str, Any] | None = None,
        weights: Sequence[float] | None = None,
        default_weight: float = 0.5,
        seed: int = 0,
        stacker: dict[str, Any] | None = None,
    ) -> None:
        self.sasrec = dict(self.default_sasrec if sasrec is None else sasrec)
        #: :class:`CandidateStacker` keyword arguments, or None for the plain blend (see :meth:`fit`).
        self.stacker = None if stacker is None else dict(stacker)
        #: Seeds the SASRec member unless its own ``sasrec`` dict names a seed (``shopkeep evaluate --seed``
        #: passes it here; before, the member always ran with its default seed 0).
        self.seed = int(seed)
        self.itemknn = dict(itemknn or {})
        self.weights = [float(w) for w in (self.default_weights() if weights is None else weights)]
        self.default_weight = float(default_weight)
        self.sasrec_: SASRec | None = None
        self.itemknn_: ItemKNNRecommender | None = None
        self.weight_: float | None = None
        self.search_: dict[str, float] = {}
        self.stacker_: CandidateStacker | None = None
        self.stack_inputs_: StackInputs | None = None
        self._cache: dict[bytes, torch.Tensor] | None = None

    @classmethod
    def default_weights(cls) -> tuple[float, ...]:
        """The validation grid of blend weights used when ``weights`` is not given."""
        return DEFAULT_WEIGHTS

    def get_config(self) -> dict[str, Any]:
        """The constructor's keyword arguments."""
        return {
            "sasrec": dict(self.sasrec),
            "itemknn": dict(self.itemknn),
            "weights": list(self.weights),
            "default_weight": self.default_weight,
            "seed": self.seed,
            **({} if self.stacker is None else {"stacker": dict(self.stacker)}),
        }

    def _check_params(self) -> None:
        for field, value in [("default_weight", self.default_weight)] + [("weights", w) for w in self.weights]:
            if not 0.0 <= value <= 1.0:
                raise ValidationError(field, value, "must be within [0, 1]")
        if not self.weights:
            raise ValidationError("weights", self.weights, "must name at least one weight")
        if self.stacker is not None:
            self._new_stacker()  # names a bad stacker setting before anything trains

    def _members(self) -> tuple[SASRec, ItemKNNRecommender]:
        try:
            return self.sasrec_class(**{"seed": self.seed, **self.sasrec}), self.knn_class(**self.itemknn)
        except TypeError as exc:
            raise ValidationError("sasrec/itemknn", sorted({**self.sasrec, **self.itemknn}), str(exc)) from None

    def fit(self, train: Interactions, validate: ValidateFn | None = None) -> Self:
        """Fit both members on ``train``; with ``validate``, pick the weight that scores best on it.

        With a ``stacker`` configuration and a validate callback that shows its cases
        (:class:`~shopkeep.models.base.LabeledValidate`, as the evaluation runner's does), the blend at the
        stacker's ``candidate_weight`` instead picks candidates for a :class:`CandidateStacker` fitted on
        the earlier validation cases; it is kept when it beats the blend and the knn member on the later
        ones, else the weight search runs as without it."""
        self._check_params()
        sas, knn = self._members()
        self.itemknn_ = knn.fit(train)
        self.sasrec_ = sas.fit(train, validate=validate)
        self.weight_, self.search_ = self.default_weight, {}
        self.stacker_ = self.stack_inputs_ = None
        if validate is None:
            return self
        if self.stacker is not None and isinstance(validate, LabeledValidate) and self._fit_stacker(train, validate):
            return self
        self._cache = {}
        try:
            for w in self.weights:
                self.weight_ = w
                self.search_[str(w)] = float(validate(self))
        finally:
            self._cache = None
        self.weight_ = max(self.weights, key=lambda w: self.search_[str(w)])
        return self

    def _new_stacker(self) -> CandidateStacker:
        try:
            return CandidateStacker(**{"seed": self.seed, **(self.stacker or {})})
        except TypeError as exc:
            raise ValidationError("stacker", sorted(self.stacker or {}), str(exc)) from None

    def _stack_inputs(self, train: Interactions, stacker: CandidateStacker) -> StackInputs:
        assert self.itemknn_ is not None and self.itemknn_.sim_ is not None
        return StackInputs.from_sequences(train.sequences, train.n_items, self.itemknn_.sim_, stacker.recent_share)

    def _fit_stacker(self, train: Interactions, validate: LabeledValidate) -> bool:
        """Fit the stacker on the validation cases (one scoring pass); keep it when its MRR@20 on the held-out
        later cases beats both the blend it re-ranks and the knn member alone there (``search_`` records the
        three MRRs and the number of cases as ``held_out:*``). Returns whether it was kept (if not, or when
        LightGBM is not installed, the caller runs the weight search)."""
        stacker = self._new_stacker()
        if importlib.util.find_spec("lightgbm") is None:  # the ml extra ships it; without it: the weight search
            return False
        inputs = self._stack_inputs(train, stacker)
        self.weight_ = stacker.candidate_weight
        rows = stacker.case_rows(len(validate.histories))
        histories = [validate.histories[i] for i in rows]
        targets = np.asarray(validate.targets, dtype=np.int64)[rows]
        feats, labels, blend_ranks, knn_ranks = self.stack_cases(
            histories, targets, inputs, stacker.n_candidates, report=validate.report
        )
        stacker.fit(feats, labels, blend_ranks)
        cut = int(len(histories) * stacker.train_share)
        knn_mrr = mrr_at(knn_ranks[cut:])
        report = stacker.report_
        self.search_ = {"held_out:stacked": report["stacked_mrr@20"], "held_out:blend": report["blend_mrr@20"],
                        "held_out:knn": knn_mrr, "held_out:cases": report["held_out_cases"]}
        if report["stacked_mrr@20"] <= max(report["blend_mrr@20"], knn_mrr):
            return False
        self.stacker_, self.stack_inputs_ = stacker, inputs
        return True

    def stack_cases(
        self,
        histories: Sequence[IntArray],
        targets: IntArray,
        inputs: StackInputs,
        n_candidates: int,
        report: Callable[[str, int, int], None] | None = None,
    ) -> tuple[FloatArray, FloatArray, IntArray, IntArray]:
        """What the stacker learns from, for cases with known next items (fitted members, ``weight_`` set):
        candidate features ``(n, C, F)``, labels ``(n, C)`` (1 at the target), and the target's rank under the
        blend and under the knn member alone. Scored in chunks; ``report(phase, done, total)`` after each."""
        feats, labels, blend_ranks, knn_ranks = [], [], [], []
        for lo in range(0, len(histories), _STACK_CHUNK):
            hist, tgt = histories[lo : lo + _STACK_CHUNK], targets[lo : lo + _STACK_CHUNK]
            zs, zk, raw, blend = self._member_scores(hist)
            cand, f = candidate_features(hist, zs, zk, raw, blend, inputs, n_candidates)
            feats.append(f)
            labels.append((cand == tgt[:, None]).astype(np.float32))
            blend_ranks.append(_ranks(blend, tgt))
            knn_ranks.append(_ranks(zk, tgt))
            if report is not None:
                report("stacker: candidates", lo + len(hist), len(histories))
        return (np.concatenate(feats), np.concatenate(labels), np.concatenate(blend_ranks),
                np.concatenate(knn_ranks))

    def _member_scores(self, histories: Sequence[IntArray]) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """z(transformer), z(knn), the transformer's raw scores and the blend at ``weight_``."""
        assert self.itemknn_ is not None and self.weight_ is not None
        raw = np.asarray(self._sasrec_scores(histories), dtype=np.float32)
        zs, zk = zscore(raw), zscore(self.itemknn_.score(histories))
        return zs, zk, raw, (self.weight_ * zs + (1.0 - self.weight_) * zk).astype(np.float32)

    def refit(self, train: Interactions) -> Self:
        """A copy with the same SASRec and weight and itemknn refit on ``train`` (train + validation); a
        stacker is kept as fitted, its popularity inputs recounted on ``train``."""
        check_fitted(self, "sasrec_")
        model = type(self)(**self.get_config())
        model.sasrec_, model.weight_, model.search_ = self._refit_sasrec(train), self.weight_, dict(self.search_)
        model.itemknn_ = self.knn_class(**self.itemknn).fit(train)
        if self.stacker_ is not None:
            model.stacker_, model.stack_inputs_ = self.stacker_, model._stack_inputs(train, self.stacker_)
        return model

    def _refit_sasrec(self, train: Interactions) -> SASRec:
        """The SASRec member of the refit blend: the fitted one, unchanged (subclasses may fine-tune a copy)."""
        assert self.sasrec_ is not None
        return self.sasrec_

    def _sasrec_scores(self, histories: Sequence[IntArray]) -> FloatArray:
        """SASRec's scores; during the weight search, from cached last hidden states."""
        sas = self.sasrec_
        assert sas is not None
        if self._cache is None or sas.net_ is None or sas.net_.repeat_gate is not None:
            return sas.score(histories)
        net = sas.net_
        with torch.no_grad():
            key = _content_key(histories)
            if key not in self._cache:
                self._cache[key] = sas.last_hidden(histories)
            return (self._cache[key] @ net.item_table()[1:].T).float().cpu().numpy()  # type: ignore[no-any-return]

    def score(self, histories: Sequence[IntArray]) -> FloatArray:
        """``weight_ * z(sasrec) + (1 - weight_) * z(itemknn)``, shape ``(len(histories), n_items)``; with a
        kept stacker, its top candidates come first in the stacker's order (:func:`stacked_scores`)."""
        check_fitted(self, "sasrec_")
        assert self.sasrec_ is not None and self.itemknn_ is not None and self.weight_ is not None
        if self.stacker_ is not None and self.stack_inputs_ is not None:
            zs, zk, raw, blend = self._member_scores(histories)
            cand, feats = candidate_features(
                histories, zs, zk, raw, blend, self.stack_inputs_, self.stacker_.n_candidates
            )
            return stacked_scores(blend, cand, self.stacker_.predict(feats))
        w = self.weight_
        if w >= 1.0:
            return zscore(self._sasrec_scores(histories))
        knn = zscore(self.itemknn_.score(histories))
        if w <= 0.0:
            return knn
        return (w * zscore(self._sasrec_scores(histories)) + (1.0 - w) * knn).astype(np.float32)

    def save(self, path: Path) -> None:
        """Write ``model.json`` (config, weight, search) and the members into ``sasrec/`` and ``itemknn/``."""
        check_fitted(self, "sasrec_")
        assert self.sasrec_ is not None and self.itemknn_ is not None
        path = Path(path)
        self.sasrec_.save(path / "sasrec")
        self.itemknn_.save(path / "itemknn")
        if self.stacker_ is not None and self.stack_inputs_ is not None:
            self.stacker_.save(path / "stacker", self.stack_inputs_)
        meta = {"weight": self.weight_, "validation_by_weight": self.search_, "stacked": self.stacker_ is not None}
        write_artifact(path, self.name, self.get_config(), {}, meta)

    @classmethod
    def load(cls, path: Path) -> Self:
        """Read a model written by :meth:`save`."""
        path = Path(path)
        doc, _ = read_artifact(path, cls.name)
        model = cls(**doc["config"])
        meta = doc.get("meta", {})
        weight = meta.get("weight")
        if not isinstance(weight, (int, float)) or not 0.0 <= weight <= 1.0:
            raise ValidationError("meta.weight", weight, f"{path}/model.json: must be a number within [0, 1]")
        model.weight_ = float(weight)
        model.search_ = {str(k): float(v) for k, v in meta.get("validation_by_weight", {}).items()}
        model.sasrec_ = cls.sasrec_class.load(path / "sasrec")
        model.itemknn_ = cls.knn_class.load(path / "itemknn")
        if meta.get("stacked"):
            assert model.itemknn_.sim_ is not None
            model.stacker_, model.stack_inputs_ = CandidateStacker.load(path / "stacker", model.itemknn_.sim_)
        return model


#: Validation cases scored at once while fitting the stacker (two members' full score rows each).
_STACK_CHUNK = 512


def _ranks(scores: FloatArray, targets: IntArray) -> IntArray:
    """The target's 0-based rank per row (ties broken against the target)."""
    target = np.take_along_axis(scores, targets[:, None], axis=1)
    out: IntArray = (scores >= target).sum(axis=1).astype(np.int64) - 1
    return out


#: The session transformer member of ``sasrec_session_knn`` (chosen on Diginetica's validation split,
#: benchmarks/quality/diginetica_NOTES.md): sampled softmax over 1,024 shared negatives drawn from the item
#: frequency with the logQ correction (a full-softmax epoch over 43k items takes minutes on two cores),
#: batches of 512 sessions, lr 5e-3 decayed x0.7 per epoch, one torch thread (two threads cost ~3x the
#: CPU per position on a busy machine), validation every third epoch and after the last (a pass over
#: Diginetica's 69,526 validation prefixes costs about as much as an epoch), and a training cap that
#: leaves room for the weight check, the validation pass and the test pass within 20 minutes per seed.
DEFAULT_SESSION_SASREC: dict[str, Any] = {
    "d": 64,
    "dropout": 0.1,
    "loss": "sampled",
    "n_negatives": 1024,
    "negative_sampling": "frequency",
    "batch_size": 512,
    "lr": 5e-3,
    "lr_decay": 0.7,
    "num_threads": 1,
    "validate_every": 3,
    "max_train_seconds": 360.0,
}
#: Each weight costs a full pass over the validation split (minutes on a busy two-core machine), so the
#: grid is w = 0 (session_knn alone: the blend never validates below it) and w = 0.85, the best P@20 of
#: the validation runs in diginetica_NOTES.md (their MRR@20 optimum was 0.85-0.9).
DEFAULT_SESSION_WEIGHTS: tuple[float, ...] = (0.0, 0.85)
#: Transformer fine-tune epochs on train + validation when the runner refits (see ``refit_epochs``): in a
#: time-split simulation inside the training data (diginetica_NOTES.md, stop 14) two epochs raised the
#: transformer's later-in-time P@20 by ~0.009 and the blend's by ~0.002; each costs ~45 s on Diginetica.
DEFAULT_REFIT_EPOCHS = 2
#: The stacker of ``sasrec_session_knn`` (:class:`CandidateStacker` keywords): it re-orders the top 100 of
#: the w = 0.85 blend with 200 LambdaRank rounds at lr 0.05, learned on the first 80 % of the validation
#: prefixes. On Diginetica's validation split (trained on the first 70 %, measured on the last 30 %) it
#: raised P@20 0.5331 -> 0.5444 and MRR@20 0.1906 -> 0.2020 (benchmarks/quality/diginetica_NOTES.md, stop 15).
DEFAULT_SESSION_STACKER: dict[str, Any] = {
    "n_candidates": 100,
    "candidate_weight": 0.85,
    "train_share": 0.8,
    "rounds": 200,
    "learning_rate": 0.05,
}


class SASRecSessionKNNBlend(SASRecKNNBlend):
    """The same blend for anonymous sessions: ``SASRecSession`` + ``session_knn`` (itemknn with the repeat
    term); ``w = 0`` is session_knn alone, so on validation it is never below session_knn. ``seed`` seeds
    the transformer member unless its own ``sasrec`` dict names a seed (``shopkeep evaluate --seed``
    passes it here)."""

    name = "sasrec_session_knn"
    sasrec_class = SASRecSession
    knn_class = SessionKNNRecommender
    default_sasrec = DEFAULT_SESSION_SASREC

    def __init__(
        self,
        *,
        refit_epochs: int = DEFAULT_REFIT_EPOCHS,
        stacker: dict[str, Any] | None = DEFAULT_SESSION_STACKER,
        **kwargs: Any,
    ) -> None:
        super().__init__(stacker=stacker, **kwargs)
        #: Epochs of :meth:`SASRec.fine_tune` on the refit data (train + validation, the sessions closest
        #: in time to the test ones) in :meth:`refit`; 0 keeps the transformer as validated.
        self.refit_epochs = int(refit_epochs)

    @classmethod
    def default_weights(cls) -> tuple[float, ...]:
        """The validation grid of blend weights used when ``weights`` is not given."""
        return DEFAULT_SESSION_WEIGHTS

    def get_config(self) -> dict[str, Any]:
        """The constructor's keyword arguments."""
        return {**super().get_config(), "refit_epochs": self.refit_epochs, "stacker": self.stacker}

    def _check_params(self) -> None:
        super()._check_params()
        if self.refit_epochs < 0:
            raise ValidationError("refit_epochs", self.refit_epochs, "must be >= 0")

    def _refit_sasrec(self, train: Interactions) -> SASRec:
        """A copy of the transformer fine-tuned ``refit_epochs`` epochs on ``train`` (the fitted one when 0)."""
        assert self.sasrec_ is not None
        if self.refit_epochs <= 0:
            return self.sasrec_
        return copy.deepcopy(self.sasrec_).fine_tune(train, self.refit_epochs)
