"""SASRec: a causal self-attention next-item recommender trained with softmax cross-entropy.

The network (Kang & McAuley 2018, with the training recipe that later work found to matter):

* item id embedding (+ the mean of its attribute embeddings when the training data carries
  ``features.attributes``) and learned position embeddings, dropout;
* ``n_layers`` causal self-attention blocks (pre- or post-LayerNorm), padding keys masked;
* the output layer is tied to the item table: ``score(item) = h · e(item)``;
* cross-entropy at every position of every training sequence, either over the whole catalog
  (``loss="full"``) or against ``n_negatives`` negatives shared by the batch (``loss="sampled"``);
  ``loss="auto"`` picks full softmax up to ``full_softmax_max_items`` items. Sampled negatives are
  uniform (``negative_sampling="uniform"``) or drawn from the training item frequency raised to
  ``sampling_power`` (``"frequency"``), with the logQ correction: every sampled-softmax logit, the
  positive's included, has ``log q(item)`` subtracted, so the loss estimates the full softmax rather
  than punishing popular items; negatives equal to a row's label are masked;
* optional ``repeat_bias``: a context-dependent bonus for items already in the history, for
  session data where a large share of next clicks repeat an earlier one;
* early stopping on the caller's ``validate`` callback with ``patience``; the best weights are kept.

:class:`SASRecSession` is the same model with defaults for short anonymous sessions.

torch is imported by this module only (``import shopkeep`` and the model registry never import it).
"""

from __future__ import annotations

import inspect
import json
import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from shopkeep.errors import ValidationError
from shopkeep.models.base import (
    BestWeights,
    FloatArray,
    IntArray,
    Interactions,
    ValidateFn,
    check_fitted,
    check_item_range,
    left_pad,
    save_weights,
)

__all__ = ["NegativeSampler", "SASRec", "SASRecSession"]

FORMAT_VERSION = 1
#: Offset of the random streams of :meth:`SASRec.fine_tune` from those of ``fit`` (same seed, other draws).
_FINE_TUNE_STREAM = 7919
_WEIGHTS = "model.safetensors"
_META = "model.json"


class _Net(nn.Module):
    """Embeddings + causal transformer encoder; the item table doubles as the output layer."""

    def __init__(self, n_items: int, n_attributes: int, attr_index: Any, attr_offsets: Any, cfg: dict[str, Any]):
        super().__init__()
        d, self.max_len = int(cfg["d"]), int(cfg["max_len"])
        self.n_heads = int(cfg["n_heads"])
        self.scale = math.sqrt(d)
        self.item_emb = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.pos_emb = nn.Embedding(self.max_len, d)
        self.attr_emb = nn.EmbeddingBag(n_attributes, d, mode="mean") if n_attributes > 0 else None
        self.register_buffer("attr_index", attr_index)
        self.register_buffer("attr_offsets", attr_offsets)
        self.drop = nn.Dropout(float(cfg["dropout"]))
        layer = nn.TransformerEncoderLayer(
            d,
            self.n_heads,
            dim_feedforward=d * int(cfg["ffn_mult"]),
            dropout=float(cfg["dropout"]),
            activation="gelu",
            batch_first=True,
            norm_first=bool(cfg["pre_ln"]),
        )
        self.encoder = nn.TransformerEncoder(layer, int(cfg["n_layers"]), enable_nested_tensor=False)
        self.out_norm: nn.Module = nn.LayerNorm(d) if cfg["pre_ln"] else nn.Identity()
        self.repeat_gate = nn.Linear(d, 1) if cfg["repeat_bias"] else None
        nn.init.normal_(self.item_emb.weight, std=d**-0.5)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        if self.attr_emb is not None:
            nn.init.normal_(self.attr_emb.weight, std=d**-0.5)

    def item_table(self) -> torch.Tensor:
        """Representation of every token ``0..n_items`` (0 = padding)."""
        table = self.item_emb.weight
        if self.attr_emb is not None:
            table = table + self.attr_emb(self.attr_index, self.attr_offsets)
        return table

    def encode(self, seqs: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Hidden states ``(B, L, d)`` for left-padded token sequences ``(B, L)``."""
        length = seqs.shape[1]
        pos = torch.arange(self.max_len - length, self.max_len, device=seqs.device)
        x = self.drop(table[seqs] * self.scale + self.pos_emb(pos)[None])
        valid = seqs > 0
        causal = torch.ones(length, length, dtype=torch.bool, device=seqs.device).tril()
        allowed = causal[None] & valid[:, None, :]
        allowed = allowed | torch.eye(length, dtype=torch.bool, device=seqs.device)[None]
        blocked = (~allowed).repeat_interleave(self.n_heads, dim=0)
        return self.out_norm(self.encoder(x, mask=blocked))  # type: ignore[no-any-return]

    def repeat_term(self, hidden: torch.Tensor, seqs: torch.Tensor, rows: torch.Tensor, n: int) -> torch.Tensor:
        """Bonus ``(len(rows), n)`` for items seen at or before each selected flat position ``b * L + t``."""
        assert self.repeat_gate is not None
        length = seqs.shape[1]
        hist = seqs[rows // length]
        upto = torch.arange(length, device=seqs.device)[None, :] <= (rows % length)[:, None]
        r, s = (upto & (hist > 0)).nonzero(as_tuple=True)
        seen = torch.zeros(rows.shape[0], n, device=seqs.device)
        seen[r, hist[r, s] - 1] = 1.0
        gate: torch.Tensor = self.repeat_gate(hidden)
        return gate * seen


def _attribute_tensors(train: Interactions) -> tuple[int, Any, Any]:
    """EmbeddingBag inputs (flat attribute ids, per-token offsets) for tokens ``0..n_items``."""
    feats = train.features
    if feats.n_attributes <= 0 or len(feats.attributes) != train.n_items:
        return 0, torch.zeros(0, dtype=torch.long), torch.zeros(train.n_items + 1, dtype=torch.long)
    lengths = [0] + [int(np.asarray(a).size) for a in feats.attributes]
    offsets = np.cumsum([0, *lengths[:-1]]).astype(np.int64)
    flat = np.concatenate([np.asarray(a, dtype=np.int64).ravel() for a in feats.attributes] or [np.zeros(0, np.int64)])
    if flat.size and (int(flat.min()) < 0 or int(flat.max()) >= feats.n_attributes):
        raise ValidationError("features.attributes", int(flat.max()), f"attribute id outside [0, {feats.n_attributes})")
    return feats.n_attributes, torch.from_numpy(flat), torch.from_numpy(offsets)


class NegativeSampler:
    """Item indices drawn with probability ``q(i) ∝ (count_i + 1) ** power`` (``power`` 0: uniform).

    ``log_q`` is the log of each item's probability (a float32 torch tensor) for the logQ correction.

    >>> sampler = NegativeSampler(np.array([0, 3, 0, 96]), power=1.0)
    >>> [round(float(p), 2) for p in sampler.log_q.exp()]
    [0.01, 0.04, 0.01, 0.94]
    >>> sampler.draw(np.random.default_rng(0), 5).tolist()
    [3, 3, 1, 1, 3]
    """

    def __init__(self, counts: np.ndarray[Any, Any], power: float) -> None:
        weights = (np.asarray(counts, dtype=np.float64) + 1.0) ** float(power)
        prob = weights / weights.sum()
        self.power = float(power)
        self.cdf = np.cumsum(prob)
        self.cdf[-1] = 1.0
        self.log_q = torch.from_numpy(np.log(prob).astype(np.float32))

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray[Any, Any]:
        """``n`` item indices (int64), drawn with replacement."""
        if self.power == 0.0:  # the exact draws of the original uniform sampler (same seeds, same numbers)
            return rng.integers(0, self.cdf.size, size=n)
        return np.searchsorted(self.cdf, rng.random(n), side="right").astype(np.int64)


class SASRec:
    """Self-attentive sequential recommender (see the module docstring).

    ``max_epochs`` caps training; without a ``validate`` callback it trains ``epochs_without_validation``
    epochs. ``max_train_seconds`` (wall clock, validation included) stops training before an epoch
    expected to end past it, or inside an epoch that reaches it (then validates once more); the best
    weights so far are kept. ``validate_every`` = n validates after every n-th epoch and after the
    last one (validation over many sessions can cost as much as an epoch). Epoch ``e`` (from 0) trains
    with learning rate ``lr * lr_decay**e``. ``history_`` holds one record per epoch.
    """

    name = "sasrec"

    def __init__(
        self,
        *,
        d: int = 128,
        n_layers: int = 2,
        n_heads: int = 2,
        ffn_mult: int = 1,
        max_len: int = 50,
        dropout: float = 0.5,
        pre_ln: bool = True,
        use_attributes: bool = True,
        repeat_bias: bool = False,
        loss: str = "auto",
        n_negatives: int = 1024,
        negative_sampling: str = "uniform",
        sampling_power: float = 0.75,
        full_softmax_max_items: int = 200_000,
        label_smoothing: float = 0.0,
        lr: float = 2e-3,
        lr_decay: float = 1.0,
        weight_decay: float = 0.0,
        batch_size: int = 256,
        length_buckets: int = 32,
        max_epochs: int = 200,
        epochs_without_validation: int = 30,
        patience: int = 5,
        validate_every: int = 1,
        max_train_seconds: float = 900.0,
        num_threads: int = 2,
        device: str = "cpu",
        seed: int = 0,
    ) -> None:
        self.d, self.n_layers, self.n_heads, self.ffn_mult = d, n_layers, n_heads, ffn_mult
        self.max_len, self.dropout, self.pre_ln = max_len, dropout, pre_ln
        self.use_attributes, self.repeat_bias = use_attributes, repeat_bias
        self.loss, self.n_negatives, self.full_softmax_max_items = loss, n_negatives, full_softmax_max_items
        self.negative_sampling, self.sampling_power = negative_sampling, sampling_power
        self.label_smoothing, self.lr, self.weight_decay, self.lr_decay = label_smoothing, lr, weight_decay, lr_decay
        self.batch_size, self.length_buckets, self.max_epochs = batch_size, length_buckets, max_epochs
        self.epochs_without_validation = epochs_without_validation
        self.patience, self.max_train_seconds, self.validate_every = patience, max_train_seconds, validate_every
        self.num_threads, self.device, self.seed = num_threads, device, seed
        self.net_: _Net | None = None
        self.n_items_: int | None = None
        self.history_: list[dict[str, float]] = []
        self._sampler: NegativeSampler | None = None

    def get_config(self) -> dict[str, Any]:
        """Hyper-parameters as JSON-able data (the constructor's keyword arguments)."""
        return {k: getattr(self, k) for k in inspect.signature(SASRec.__init__).parameters if k != "self"}

    def _check_params(self) -> None:
        if self.loss not in {"auto", "full", "sampled"}:
            raise ValidationError("loss", self.loss, "must be 'auto', 'full' or 'sampled'")
        if int(self.length_buckets) < 0:
            raise ValidationError("length_buckets", self.length_buckets, "must be >= 0 (0 = no bucketing)")
        for key in ("d", "n_layers", "n_heads", "max_len", "batch_size", "max_epochs", "n_negatives", "validate_every"):
            if int(getattr(self, key)) <= 0:
                raise ValidationError(key, getattr(self, key), "must be > 0")
        if self.negative_sampling not in {"uniform", "frequency"}:
            raise ValidationError("negative_sampling", self.negative_sampling, "must be 'uniform' or 'frequency'")
        if not 0.0 <= float(self.sampling_power) <= 1.0:
            raise ValidationError("sampling_power", self.sampling_power, "must be within [0, 1]")
        if self.d % self.n_heads:
            raise ValidationError("n_heads", self.n_heads, f"must divide d={self.d}")
        if not 0.0 < float(self.lr_decay) <= 1.0:
            raise ValidationError("lr_decay", self.lr_decay, "must be within (0, 1]")
        if not 0.0 <= self.dropout < 1.0:
            raise ValidationError("dropout", self.dropout, "must be in [0, 1)")

    def _use_full_softmax(self, n_items: int) -> bool:
        return self.loss == "full" or (self.loss == "auto" and n_items <= self.full_softmax_max_items)

    def _build(self, n_items: int, n_attributes: int, attr_index: Any, attr_offsets: Any) -> _Net:
        torch.set_num_threads(self.num_threads)
        torch.manual_seed(self.seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        net = _Net(n_items, n_attributes, attr_index, attr_offsets, self.get_config())
        return net.to(self.device)

    def _training_rows(self, train: Interactions) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Left-padded (input, target) token rows: each sequence predicts its own next items."""
        usable = [s for s in train.sequences if s.size >= 2]
        if not usable:
            raise ValidationError("train.sequences", len(train.sequences), "need at least one sequence of >= 2 items")
        window = [np.asarray(s, dtype=np.int64)[-(self.max_len + 1) :] for s in usable]
        inputs = left_pad([w[:-1] for w in window], self.max_len)
        targets = left_pad([w[1:] for w in window], self.max_len)
        return inputs, targets

    def fit(self, train: Interactions, validate: ValidateFn | None = None) -> Self:
        """Train on ``train``; with ``validate``, early-stop on it and keep the best weights."""
        self._check_params()
        source = train if self.use_attributes else Interactions(sequences=(), n_items=train.n_items)
        n_attr, attr_index, attr_offsets = _attribute_tensors(source)
        inputs, targets = self._training_rows(train)
        self.n_items_ = train.n_items
        counts = np.bincount(targets[targets > 0] - 1, minlength=train.n_items)
        power = self.sampling_power if self.negative_sampling == "frequency" else 0.0
        self._sampler = NegativeSampler(counts, power)
        self.net_ = self._build(train.n_items, n_attr, attr_index, attr_offsets)
        optim = torch.optim.AdamW(self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        epochs = self.max_epochs if validate is not None else min(self.max_epochs, self.epochs_without_validation)
        try:
            self._train_loop(inputs, targets, optim, epochs, validate)
        finally:
            self._sampler = None
        self.net_.eval()
        return self

    def _train_loop(self, inputs: Any, targets: Any, optim: Any, epochs: int, validate: ValidateFn | None) -> None:
        assert self.net_ is not None
        rng = np.random.default_rng(self.seed)
        stop, start = BestWeights(), time.monotonic()
        self.history_ = []
        lengths = (inputs > 0).sum(axis=1)
        every = max(1, int(self.validate_every))
        for epoch in range(epochs):
            for group in optim.param_groups:  # a per-epoch step decay (deterministic, unlike a wall-clock one)
                group["lr"] = self.lr * float(self.lr_decay) ** epoch
            batches = self._epoch_batches(lengths, rng)
            self.net_.train()
            total = 0.0
            steps = 0
            for idx in batches:
                width = max(1, int(lengths[idx].max()))  # left-padded: the last `width` columns hold every item
                total += self._step(inputs[idx, -width:], targets[idx, -width:], optim, rng)
                steps += 1
                if time.monotonic() - start > self.max_train_seconds:
                    break  # out of time inside an epoch: validate this partial epoch, then stop
            record = {"epoch": epoch + steps / len(batches), "loss": total / steps}
            if (epoch + 1) % every == 0:
                self._validate(record, stop, validate)
            # Stop before an epoch that would end past the budget (the last one predicts the next one's cost).
            elapsed = time.monotonic() - start
            last_cost = elapsed - (self.history_[-1]["seconds"] if self.history_ else 0.0)
            final = epoch == epochs - 1 or elapsed + last_cost > self.max_train_seconds
            if final and "validation" not in record:  # never end on unvalidated training
                self._validate(record, stop, validate)
            record["seconds"] = time.monotonic() - start
            self.history_.append(record)
            if final or stop.waited >= self.patience:
                break
        stop.restore(self.net_)

    def fine_tune(self, train: Interactions, epochs: int) -> Self:
        """Continue training the fitted network on ``train`` for ``epochs`` epochs, without validation.

        The learning-rate schedule goes on where training stopped: after ``n`` trained epochs, fine-tune
        epoch ``k`` (from 0) uses ``lr * lr_decay ** (n + k)``, with a fresh AdamW. Deterministic per
        ``seed`` (its own numpy and torch streams, independent of what happened before). The negative
        sampler's frequencies come from ``train``. Used to bring a transformer up to date on data it
        could not see while it was being validated (e.g. train + validation before the test phase).
        """
        check_fitted(self, "net_")
        assert self.net_ is not None
        if int(epochs) < 0:
            raise ValidationError("epochs", epochs, "must be >= 0")
        if train.n_items != self.n_items_:
            raise ValidationError("train.n_items", train.n_items, f"the model was fitted on {self.n_items_} items")
        if int(epochs) == 0:
            return self
        inputs, targets = self._training_rows(train)
        counts = np.bincount(targets[targets > 0] - 1, minlength=train.n_items)
        power = self.sampling_power if self.negative_sampling == "frequency" else 0.0
        self._sampler = NegativeSampler(counts, power)
        torch.set_num_threads(self.num_threads)
        torch.manual_seed(self.seed + _FINE_TUNE_STREAM)
        rng = np.random.default_rng([self.seed, _FINE_TUNE_STREAM])
        done = math.ceil(self.history_[-1]["epoch"]) if self.history_ else 0
        optim = torch.optim.AdamW(self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        lengths = (inputs > 0).sum(axis=1)
        try:
            for k in range(int(epochs)):
                for group in optim.param_groups:
                    group["lr"] = self.lr * float(self.lr_decay) ** (done + k)
                self.net_.train()
                total, batches = 0.0, self._epoch_batches(lengths, rng)
                for idx in batches:
                    width = max(1, int(lengths[idx].max()))
                    total += self._step(inputs[idx, -width:], targets[idx, -width:], optim, rng)
                self.history_.append({"epoch": done + k + 1.0, "loss": total / len(batches), "fine_tune": 1.0})
        finally:
            self._sampler = None
            self.net_.eval()
        return self

    def _validate(self, record: dict[str, float], stop: BestWeights, validate: ValidateFn | None) -> None:
        """Score the current weights with ``validate`` (if any) into ``record`` and ``stop``."""
        if validate is not None and self.net_ is not None:
            self.net_.eval()
            record["validation"] = score = float(validate(self))
            stop.update(score, self.net_)

    def _epoch_batches(self, lengths: np.ndarray[Any, Any], rng: np.random.Generator) -> list[np.ndarray[Any, Any]]:
        """One epoch's row batches: a seeded shuffle; with ``length_buckets`` = m, every run of m batches
        is sorted by sequence length (so a batch trims to short widths) and the batch order is shuffled."""
        order = rng.permutation(len(lengths))
        size, chunk = self.batch_size, self.batch_size * max(1, int(self.length_buckets))
        if self.length_buckets <= 0:
            return [order[lo : lo + size] for lo in range(0, len(order), size)]
        batches: list[np.ndarray[Any, Any]] = []
        for lo in range(0, len(order), chunk):
            part = order[lo : lo + chunk]
            part = part[np.argsort(lengths[part], kind="stable")]
            batches.extend(part[i : i + size] for i in range(0, len(part), size))
        return [batches[i] for i in rng.permutation(len(batches))]

    def _step(self, inp: Any, tgt: Any, optim: Any, rng: np.random.Generator) -> float:
        assert self.net_ is not None and self.n_items_ is not None
        seqs = torch.from_numpy(inp).to(self.device)
        targets = torch.from_numpy(tgt).to(self.device)
        table = self.net_.item_table()
        hidden = self.net_.encode(seqs, table)
        rows = (targets > 0).reshape(-1).nonzero().squeeze(1)
        h = hidden.reshape(-1, hidden.shape[-1])[rows]
        labels = targets.reshape(-1)[rows] - 1
        if self._use_full_softmax(self.n_items_):
            logits = h @ table[1:].T
            if self.net_.repeat_gate is not None:
                logits = logits + self.net_.repeat_term(h, seqs, rows, self.n_items_)
        else:
            logits, labels = self._sampled_logits(h, labels, table, rng)
        loss = nn.functional.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        optim.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optim.step()
        return float(loss.detach())

    def _sampled_logits(self, h: Any, labels: Any, table: Any, rng: np.random.Generator) -> tuple[Any, Any]:
        """Logits against the positive (column 0) and the batch's shared negatives, logQ-corrected
        (a constant for uniform sampling, so nothing changes there); accidental hits masked."""
        assert self._sampler is not None
        neg_np = self._sampler.draw(rng, self.n_negatives)
        neg = torch.from_numpy(neg_np).to(self.device)
        pos_logit = (h * table[labels + 1]).sum(-1, keepdim=True)
        neg_logits = h @ table[neg + 1].T
        if self._sampler.power > 0.0:
            log_q = self._sampler.log_q.to(self.device)
            pos_logit = pos_logit - log_q[labels][:, None]
            neg_logits = neg_logits - log_q[neg][None, :]
        neg_logits = neg_logits.masked_fill(neg[None, :] == labels[:, None], -1e9)
        return torch.cat([pos_logit, neg_logits], dim=1), torch.zeros_like(labels)

    def _check_histories(self, histories: Sequence[IntArray]) -> None:
        check_fitted(self, "net_")
        assert self.n_items_ is not None
        check_item_range(histories, self.n_items_)

    def _chunks(self, histories: Sequence[IntArray], size: int = 512) -> Iterator[tuple[np.ndarray[Any, Any], Any]]:
        """``(rows, tokens)`` chunks in order of history length, each padded only to its longest history.

        Padding keys are masked and positions count from the end, so trimming changes no number.
        """
        by_length = np.argsort([min(len(h), self.max_len) for h in histories], kind="stable")
        for lo in range(0, len(histories), size):
            rows = by_length[lo : lo + size]
            chunk = [histories[i] for i in rows]
            width = max(1, min(self.max_len, max(len(h) for h in chunk)))
            yield rows, torch.from_numpy(left_pad(chunk, self.max_len)[:, -width:]).to(self.device)

    def last_hidden(self, histories: Sequence[IntArray]) -> Any:
        """The final hidden state ``(len(histories), d)`` after each history (a torch tensor, no grad)."""
        self._check_histories(histories)
        assert self.net_ is not None
        self.net_.eval()
        out = torch.empty(len(histories), self.d, device=self.device)
        with torch.no_grad():
            table = self.net_.item_table()
            for rows, seqs in self._chunks(histories):
                out[torch.from_numpy(rows).to(self.device)] = self.net_.encode(seqs, table)[:, -1]
        return out

    def score(self, histories: Sequence[IntArray]) -> FloatArray:
        """Scores ``(len(histories), n_items)`` for the next item after each history."""
        self._check_histories(histories)
        assert self.net_ is not None and self.n_items_ is not None
        out = np.empty((len(histories), self.n_items_), dtype=np.float32)
        self.net_.eval()
        with torch.no_grad():
            table = self.net_.item_table()
            for rows, seqs in self._chunks(histories):
                last = self.net_.encode(seqs, table)[:, -1]
                logits = last @ table[1:].T
                if self.net_.repeat_gate is not None:
                    flat = torch.arange(seqs.shape[0], device=seqs.device) * seqs.shape[1] + seqs.shape[1] - 1
                    logits = logits + self.net_.repeat_term(last, seqs, flat, self.n_items_)
                out[rows] = logits.float().cpu().numpy()
        return out

    def save(self, path: Path) -> None:
        """Write ``model.safetensors`` and ``model.json`` (format version, config, n_items) into ``path``."""
        check_fitted(self, "net_")
        assert self.net_ is not None
        path = save_weights(path, self.net_, _WEIGHTS)
        n_attr = 0 if self.net_.attr_emb is None else int(self.net_.attr_emb.num_embeddings)
        meta = {
            "format_version": FORMAT_VERSION,
            "class": type(self).__name__,
            "config": self.get_config(),
            "n_items": self.n_items_,
            "n_attributes": n_attr,
            "history": self.history_,
        }
        (path / _META).write_text(json.dumps(meta, indent=2, sort_keys=True))

    @classmethod
    def load(cls, path: Path) -> Self:
        """Read a model written by :meth:`save`."""
        path = Path(path)
        meta = json.loads((path / _META).read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValidationError("format_version", meta.get("format_version"), f"expected {FORMAT_VERSION}")
        config = dict(meta["config"])
        config["device"] = "cpu"
        model = cls(**config)
        state = load_file(str(path / _WEIGHTS))
        model.n_items_ = int(meta["n_items"])
        model.net_ = model._build(model.n_items_, int(meta["n_attributes"]), state["attr_index"], state["attr_offsets"])
        model.net_.load_state_dict(state)
        model.net_.eval()
        model.history_ = list(meta.get("history", []))
        return model


class SASRecSession(SASRec):
    """SASRec with defaults for anonymous sessions (short, with repeats; history is not excluded)."""

    name = "sasrec_session"

    def __init__(self, **kwargs: Any) -> None:
        defaults: dict[str, Any] = {"max_len": 20, "dropout": 0.3}
        super().__init__(**{**defaults, **kwargs})
