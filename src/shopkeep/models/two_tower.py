"""Two-tower hybrid recommender: a session tower over recent items, an item tower over id + content.

* **Item tower**: ``MLP([id embedding ; mean attribute embedding ; projected title embedding])``,
  L2-normalized. During training each item's id embedding is zeroed with probability
  ``id_dropout`` (the whole row, no rescaling), so the content path alone must place items well.
  Items never seen in training always get a zero id part: their vector comes from content alone,
  exactly the state the dropout trained. Titles are embedded offline by
  :func:`shopkeep.models.content.embed_texts` (all-MiniLM-L6-v2, cached on disk).
* **Session tower**: the item-tower vectors of the last ``max_len`` items, encoded by a causal
  transformer (``encoder="transformer"``, learned positions) or a recency-weighted mean + MLP
  (``encoder="mean"``); every position predicts the next item. L2-normalized output.
* **Loss**: softmax cross-entropy with temperature over the batch's targets (in-batch negatives) plus
  ``n_negatives`` items drawn uniformly (mixed negatives, so rare items are seen as negatives too):
  from the items seen in training (``negatives_from="seen"``, default) or the whole catalog
  (``"catalog"``). Items with no interaction at all would only ever be negatives, so ``"catalog"``
  teaches the model to bury exactly the new items cold start is about (measured on Beauty:
  benchmarks/quality/cold_start.py). The logit of every candidate ``j`` is corrected by
  ``- logq_weight * log q_j`` where ``q_j`` is the probability that ``j`` enters the de-duplicated
  candidate set (in-batch frequency from training counts + uniform share): the logQ correction.
  Without it the sampled softmax learns ``log p(j | session) - log q_j``, which over-penalizes
  popular items (they are negatives far more often); with it the scores estimate ``log p(j | session)``.
  ``logq_weight`` between 0 and 1 trades the two. With ``content_aux_weight > 0`` a second softmax
  over the same candidates, all with content-only vectors (as if never seen), is added to the loss:
  it trains the content path to rank on its own, the state every new item is served in.
* Early stopping on the caller's ``validate`` callback; the best weights are kept. An epoch visits
  ``epoch_fraction`` of the sequences (a fresh random share each time), so validation can stop
  between full passes. Seeded.
* **Blend set on validation** (only with ``validate``): after training, the content skip weight is
  multiplied by each value of ``content_weight_grid`` and the tower part of never-seen items by each
  of ``cold_scale_grid``; the pair with the best validation score is kept. The skip weight learned by
  gradient descent drifts away from content similarity, which is all a cold item has (measured:
  benchmarks/quality/results/cold_start.md); the grid puts the trade-off back under validation.
  ``cold_scale`` is a new-item exposure knob (> 1 lifts every never-seen item, < 1 buries them); the
  default grid ``(1.0,)`` scores new items by the same function as old ones.

Serving: :meth:`TwoTower.user_vectors` and :meth:`TwoTower.export_item_vectors` give the vectors for
a vector index (score = inner product); :meth:`TwoTower.embed_items` embeds brand-new items from
their attributes/titles only. torch is imported by this module only.
"""

from __future__ import annotations

import inspect
import json
import math
import time
from collections.abc import Sequence
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
    ItemFeatures,
    ValidateFn,
    check_fitted,
    check_item_range,
    left_pad,
    save_weights,
)
from shopkeep.models.content import EMBEDDING_DIM, MINILM, ContentKNN, attribute_idf, embed_texts

__all__ = ["TwoTower"]

FORMAT_VERSION = 1
_WEIGHTS = "model.safetensors"
_META = "model.json"


def _attribute_pad(features: ItemFeatures, n_items: int, n_attr: int) -> torch.Tensor:
    """``(n_items, max_attrs)`` attribute ids, padded with ``n_attr`` (a zero row)."""
    if n_attr <= 0 or not features.attributes:
        return torch.full((n_items, 1), max(n_attr, 0), dtype=torch.long)
    if len(features.attributes) != n_items:
        raise ValidationError("features.attributes", len(features.attributes), f"need one entry per item ({n_items})")
    width = max(1, max(np.asarray(a).size for a in features.attributes))
    out = np.full((n_items, width), n_attr, dtype=np.int64)
    for i, attrs in enumerate(features.attributes):
        arr = np.asarray(attrs, dtype=np.int64).ravel()
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= n_attr):
            raise ValidationError(f"features.attributes[{i}]", arr.tolist()[:10], f"attribute id outside [0, {n_attr})")
        out[i, : arr.size] = arr
    return torch.from_numpy(out)


class _ItemTower(nn.Module):
    """id ⊕ attributes ⊕ title -> d (unnormalized); id part masked for cold/dropped items."""

    attr_pad: torch.Tensor
    titles: torch.Tensor
    warm: torch.Tensor

    def __init__(self, n_items: int, n_attr: int, attr_pad: torch.Tensor, titles: torch.Tensor, d: int):
        super().__init__()
        self.n_attr = n_attr
        self.id_emb = nn.Embedding(n_items, d)
        nn.init.normal_(self.id_emb.weight, std=d**-0.5)
        self.attr_emb = nn.Embedding(n_attr + 1, d, padding_idx=n_attr) if n_attr > 0 else None
        if self.attr_emb is not None:
            nn.init.normal_(self.attr_emb.weight, std=d**-0.5)
            with torch.no_grad():
                self.attr_emb.weight[n_attr].zero_()
        self.title_proj = nn.Linear(EMBEDDING_DIM, d) if titles.numel() else None
        self.register_buffer("attr_pad", attr_pad)
        self.register_buffer("titles", titles)
        self.register_buffer("warm", torch.zeros(n_items, dtype=torch.bool))
        n_parts = 1 + (self.attr_emb is not None) + (self.title_proj is not None)
        self.mlp = nn.Sequential(nn.Linear(n_parts * d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def from_parts(self, ids: torch.Tensor, attr_pad: torch.Tensor, titles: torch.Tensor) -> torch.Tensor:
        """Vectors from id embeddings ``(n, d)`` (zeros = content only), attribute ids and title vectors."""
        parts = [ids]
        if self.attr_emb is not None:
            valid = (attr_pad < self.n_attr).float()
            summed = self.attr_emb(attr_pad).sum(1)
            parts.append(summed / valid.sum(1, keepdim=True).clamp(min=1.0))
        if self.title_proj is not None:
            parts.append(self.title_proj(titles))
        x = torch.cat(parts, dim=1)
        return self.mlp(x) + sum(parts)  # type: ignore[no-any-return]

    def forward(self, items: torch.Tensor, keep_id: torch.Tensor) -> torch.Tensor:
        ids = self.id_emb(items) * keep_id[:, None].float()
        titles = self.titles[items] if self.title_proj is not None else self.titles
        return self.from_parts(ids, self.attr_pad[items], titles)


class _SessionTower(nn.Module):
    """Causal encoder over left-padded item vectors ``(B, L, d)``; output at every position."""

    def __init__(self, d: int, cfg: dict[str, Any]):
        super().__init__()
        self.kind, self.max_len, self.n_heads = str(cfg["encoder"]), int(cfg["max_len"]), int(cfg["n_heads"])
        self.decay = float(cfg["mean_decay"])
        self.drop = nn.Dropout(float(cfg["dropout"]))
        self.pos_emb = nn.Embedding(self.max_len, d)
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        self.encoder: nn.Module | None = None
        if self.kind == "transformer":
            layer = nn.TransformerEncoderLayer(
                d, self.n_heads, dim_feedforward=2 * d, dropout=float(cfg["dropout"]), activation="gelu",
                batch_first=True, norm_first=True,
            )
            self.encoder = nn.TransformerEncoder(layer, int(cfg["n_layers"]), enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.out = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=x.device).tril()
        if self.kind == "mean":
            age = torch.arange(length, device=x.device)
            w = (self.decay ** (age[:, None] - age[None, :]).clamp(min=0).float()) * causal.float()
            w = w[None] * valid[:, None, :].float()
            h = (w @ x) / w.sum(-1, keepdim=True).clamp(min=1e-6)
        else:
            assert self.encoder is not None
            pos = torch.arange(self.max_len - length, self.max_len, device=x.device)
            h = self.drop(x + self.pos_emb(pos)[None])
            allowed = (causal[None] & valid[:, None, :]) | torch.eye(length, dtype=torch.bool, device=x.device)[None]
            h = self.encoder(h, mask=(~allowed).repeat_interleave(self.n_heads, dim=0))
        h = self.norm(h)
        return h + self.out(self.drop(h))  # type: ignore[no-any-return]


class _Net(nn.Module):
    log_q: torch.Tensor
    content: torch.Tensor
    idf: torch.Tensor
    cold_scale: torch.Tensor

    def __init__(self, item_tower: _ItemTower, content: torch.Tensor, idf: torch.Tensor, cfg: dict[str, Any]):
        super().__init__()
        self.items = item_tower
        self.session = _SessionTower(int(cfg["d"]), cfg)
        n_items = item_tower.id_emb.num_embeddings
        self.register_buffer("log_q", torch.zeros(n_items))
        self.register_buffer("content", content)
        self.register_buffer("idf", idf)
        self.content_decay = float(cfg["content_decay"])
        self.log_content_weight = nn.Parameter(torch.tensor(math.log(float(cfg["content_weight_init"]))))
        self.register_buffer("cold_scale", torch.tensor(1.0))

    def content_user(self, tokens: torch.Tensor) -> torch.Tensor:
        """Recency-weighted mean content vector of the items up to each position ``(B, L, Dc)``."""
        length = tokens.shape[1]
        age = torch.arange(length, device=tokens.device)
        causal = torch.ones(length, length, dtype=torch.bool, device=tokens.device).tril().float()
        w = (self.content_decay ** (age[:, None] - age[None, :]).clamp(min=0).float()) * causal
        w = w[None] * (tokens > 0)[:, None, :].float()
        w = w / w.sum(-1, keepdim=True).clamp(min=1e-6)
        table = torch.cat([torch.zeros(1, self.content.shape[1]), self.content])
        return w @ table[tokens]  # type: ignore[no-any-return]

    def encode(self, tokens: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Normalized session vectors ``(B, L, d)``; ``table`` holds token vectors (row 0 = padding)."""
        valid = tokens > 0
        return nn.functional.normalize(self.session(table[tokens], valid), dim=-1)


class TwoTower:
    """Two-tower hybrid with logQ-corrected in-batch + uniform negatives (see the module docstring).

    ``use_titles``/``use_attributes`` switch content parts off; ``text_encoder`` is ``"all-MiniLM-L6-v2"``
    or ``"hashing"``. Without ``validate`` it trains ``epochs_without_validation`` epochs.
    """

    name = "two_tower"

    def __init__(
        self,
        *,
        d: int = 64,
        encoder: str = "transformer",
        n_layers: int = 1,
        n_heads: int = 2,
        max_len: int = 50,
        mean_decay: float = 0.8,
        dropout: float = 0.2,
        id_dropout: float = 0.3,
        content_aux_weight: float = 0.0,
        temperature: float = 0.05,
        n_negatives: int = 1024,
        logq_weight: float = 1.0,
        negatives_from: str = "seen",
        content_skip: bool = True,
        content_decay: float = 0.5,
        content_weight_init: float = 10.0,
        content_weight_grid: Sequence[float] = (1.0, 2.0, 3.0, 4.0),
        cold_scale_grid: Sequence[float] = (1.0,),
        title_weight: float = 0.5,
        use_titles: bool = True,
        use_attributes: bool = True,
        text_encoder: str = MINILM,
        cache_dir: str | None = "default",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        batch_size: int = 128,
        max_epochs: int = 100,
        epoch_fraction: float = 1.0,
        epochs_without_validation: int = 20,
        patience: int = 3,
        max_train_seconds: float = 900.0,
        num_threads: int = 2,
        seed: int = 0,
    ) -> None:
        self.d, self.encoder, self.n_layers, self.n_heads = d, encoder, n_layers, n_heads
        self.max_len, self.mean_decay, self.dropout, self.id_dropout = max_len, mean_decay, dropout, id_dropout
        self.content_aux_weight = content_aux_weight
        self.temperature, self.n_negatives, self.logq_weight = temperature, n_negatives, logq_weight
        self.negatives_from = negatives_from
        self.content_skip, self.content_decay, self.title_weight = content_skip, content_decay, title_weight
        self.content_weight_init = content_weight_init
        self.content_weight_grid = [float(v) for v in content_weight_grid]  # lists: the config round-trips JSON
        self.cold_scale_grid = [float(v) for v in cold_scale_grid]
        self.epoch_fraction = epoch_fraction
        self.use_titles, self.use_attributes = use_titles, use_attributes
        self.text_encoder, self.cache_dir = text_encoder, cache_dir
        self.lr, self.weight_decay, self.batch_size = lr, weight_decay, batch_size
        self.max_epochs, self.epochs_without_validation = max_epochs, epochs_without_validation
        self.patience, self.max_train_seconds = patience, max_train_seconds
        self.num_threads, self.seed = num_threads, seed
        self.net_: _Net | None = None
        self.n_items_: int | None = None
        self.history_: list[dict[str, float]] = []
        self._item_cache: torch.Tensor | None = None
        self._negative_pool = np.zeros(0, dtype=np.int64)

    def get_config(self) -> dict[str, Any]:
        """Hyper-parameters as JSON-able data (the constructor's keyword arguments)."""
        return {k: getattr(self, k) for k in inspect.signature(TwoTower.__init__).parameters if k != "self"}

    def _check_params(self) -> None:
        if self.encoder not in ("transformer", "mean"):
            raise ValidationError("encoder", self.encoder, "must be 'transformer' or 'mean'")
        for key in ("d", "n_layers", "n_heads", "max_len", "batch_size", "max_epochs", "n_negatives"):
            if int(getattr(self, key)) <= 0:
                raise ValidationError(key, getattr(self, key), "must be > 0")
        if self.d % self.n_heads:
            raise ValidationError("n_heads", self.n_heads, f"must divide d={self.d}")
        for key in ("dropout", "id_dropout"):
            if not 0.0 <= float(getattr(self, key)) < 1.0:
                raise ValidationError(key, getattr(self, key), "must be in [0, 1)")
        if self.negatives_from not in ("seen", "catalog"):
            raise ValidationError("negatives_from", self.negatives_from, "must be 'seen' or 'catalog'")
        if self.temperature <= 0:
            raise ValidationError("temperature", self.temperature, "must be > 0")
        if not 0.0 < self.epoch_fraction <= 1.0:
            raise ValidationError("epoch_fraction", self.epoch_fraction, "must be in (0, 1]")
        for key in ("content_weight_init", "content_weight_grid", "cold_scale_grid"):
            values = getattr(self, key)
            if not values or not all(v > 0 for v in (values if isinstance(values, list) else (values,))):
                raise ValidationError(key, values, "must be > 0 (and non-empty)")

    # ----------------------------------------------------------------- building
    def _titles(self, features: ItemFeatures, n_items: int) -> torch.Tensor:
        if not self.use_titles or not features.titles or not any(t.strip() for t in features.titles):
            return torch.zeros(0, EMBEDDING_DIM)
        if len(features.titles) != n_items:
            raise ValidationError("features.titles", len(features.titles), f"need one entry per item ({n_items})")
        return torch.from_numpy(embed_texts(features.titles, encoder=self.text_encoder, cache_dir=self.cache_dir))

    def _build(
        self, n_items: int, n_attr: int, attr_pad: torch.Tensor, titles: torch.Tensor, content: torch.Tensor,
        idf: torch.Tensor,
    ) -> _Net:
        torch.set_num_threads(self.num_threads)
        torch.manual_seed(self.seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        return _Net(_ItemTower(n_items, n_attr, attr_pad, titles, self.d), content, idf, self.get_config())

    def _content(self, features: ItemFeatures, n_items: int, idf: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The content-kNN vectors ``(n, Dc)`` of the skip path and the attribute idf (empty when off)."""
        feats = ItemFeatures(
            features.n_attributes if self.use_attributes else 0,
            features.attributes if self.use_attributes else (),
            features.titles if self.use_titles else (),
        )
        if not self.content_skip or (not feats.titles and not feats.attributes):
            return torch.zeros(n_items, 0), torch.zeros(0)
        if idf is None:
            idf = attribute_idf(feats, n_items) if feats.attributes else np.zeros(0, dtype=np.float32)
        knn = ContentKNN(title_weight=self.title_weight, text_encoder=self.text_encoder, cache_dir=self.cache_dir)
        titles, attrs = knn.item_parts(feats, n_items, np.asarray(idf, dtype=np.float32) if feats.attributes else None)
        parts = ([titles] if feats.titles else []) + ([attrs.toarray()] if feats.attributes else [])
        return torch.from_numpy(np.hstack(parts).astype(np.float32)), torch.as_tensor(np.asarray(idf, np.float32))

    def _log_q(self, train: Interactions, counts: np.ndarray[Any, Any], pool: int) -> torch.Tensor:
        """log P(item enters one step's de-duplicated candidate set): in-batch targets or uniform draws."""
        targets = max(1.0, float(counts.sum()))
        per_step = min(targets, self.batch_size * max(1.0, targets / max(1, len(train.sequences))))
        p = counts / targets
        absent = np.exp(per_step * np.log1p(-np.minimum(p, 1 - 1e-12)) + self.n_negatives * np.log1p(-1 / pool))
        return torch.from_numpy(np.log(np.maximum(1.0 - absent, 1e-12)).astype(np.float32))

    def fit(self, train: Interactions, validate: ValidateFn | None = None) -> Self:
        """Train on ``train``; with ``validate``, early-stop on it and keep the best weights."""
        self._check_params()
        feats = train.features
        n_attr = feats.n_attributes if self.use_attributes and feats.attributes else 0
        attr_pad = _attribute_pad(feats, train.n_items, n_attr)
        self.n_items_ = train.n_items
        content, idf = self._content(feats, train.n_items)
        self.net_ = self._build(train.n_items, n_attr, attr_pad, self._titles(feats, train.n_items), content, idf)
        seqs = [np.asarray(s, dtype=np.int64)[-(self.max_len + 1) :] for s in train.sequences if s.size >= 2]
        if not seqs:
            raise ValidationError("train.sequences", len(train.sequences), "need at least one sequence of >= 2 items")
        seen = np.bincount(np.concatenate(train.sequences), minlength=train.n_items)
        target_counts = np.bincount(np.concatenate([s[1:] for s in seqs]), minlength=train.n_items)
        self.net_.items.warm.copy_(torch.from_numpy(seen > 0))
        self._negative_pool = np.flatnonzero(seen > 0) if self.negatives_from == "seen" else np.arange(train.n_items)
        self.net_.log_q.copy_(self._log_q(train, target_counts.astype(np.float64), self._negative_pool.size))
        inputs = left_pad([s[:-1] for s in seqs], self.max_len)
        targets = left_pad([s[1:] for s in seqs], self.max_len)
        epochs = self.max_epochs if validate is not None else min(self.max_epochs, self.epochs_without_validation)
        self._train_loop(inputs, targets, epochs, validate)
        if validate is not None:
            self._tune_blend(validate)
        return self

    def _tune_blend(self, validate: ValidateFn) -> None:
        """Pick the content-weight multiplier and cold tower scale with the best validation score."""
        assert self.net_ is not None
        net = self.net_
        base = float(net.log_content_weight.detach())
        grid = self.content_weight_grid if net.content.shape[1] else (1.0,)
        best, choice = -math.inf, (1.0, 1.0)
        for mult in grid:
            for scale in self.cold_scale_grid:
                with torch.no_grad():
                    net.log_content_weight.fill_(base + math.log(mult))
                    net.cold_scale.fill_(scale)
                score = float(validate(self))
                if score > best:
                    best, choice = score, (mult, scale)
        with torch.no_grad():
            net.log_content_weight.fill_(base + math.log(choice[0]))
            net.cold_scale.fill_(choice[1])
        self.history_.append({"blend_content_mult": choice[0], "blend_cold_scale": choice[1], "validation": best})

    # ----------------------------------------------------------------- training
    def _train_loop(self, inputs: Any, targets: Any, epochs: int, validate: ValidateFn | None) -> None:
        assert self.net_ is not None
        optim = torch.optim.AdamW(self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        rng = np.random.default_rng(self.seed)
        stop, start = BestWeights(), time.monotonic()
        self.history_ = []
        for epoch in range(epochs):
            order = rng.permutation(len(inputs))[: max(1, math.ceil(self.epoch_fraction * len(inputs)))]
            self.net_.train()
            self._item_cache = None
            total, steps = 0.0, 0
            for lo in range(0, len(order), self.batch_size):
                idx = order[lo : lo + self.batch_size]
                total += self._step(inputs[idx], targets[idx], optim, rng)
                steps += 1
            self.net_.eval()
            record = {"epoch": float(epoch + 1), "loss": total / max(1, steps)}
            if validate is not None:
                record["validation"] = score = float(validate(self))
                stop.update(score, self.net_)
            record["seconds"] = time.monotonic() - start
            self.history_.append(record)
            if stop.waited >= self.patience or record["seconds"] > self.max_train_seconds:
                break
        stop.restore(self.net_)
        self._item_cache = None

    def _step(self, inp: Any, tgt: Any, optim: Any, rng: np.random.Generator) -> float:
        assert self.net_ is not None and self.n_items_ is not None
        width = int(max(1, (inp > 0).any(axis=0).sum()))  # drop all-padding columns on the left
        inp, tgt = torch.from_numpy(inp[:, -width:]), torch.from_numpy(tgt[:, -width:])
        pool = self._negative_pool
        negatives = torch.from_numpy(pool[rng.integers(0, pool.size, size=self.n_negatives)])
        rows = (tgt > 0).reshape(-1).nonzero().squeeze(1)
        labels_item = tgt.reshape(-1)[rows] - 1
        used = torch.unique(torch.cat([inp[inp > 0] - 1, labels_item, negatives]))
        keep = self.net_.items.warm[used] & (torch.rand(used.shape[0]) >= self.id_dropout)
        vecs = self.net_.items(used, keep)
        lookup = torch.zeros(self.n_items_ + 1, dtype=torch.long)
        lookup[used + 1] = torch.arange(1, used.shape[0] + 1)
        table = torch.cat([torch.zeros(1, vecs.shape[1]), vecs])
        hidden = self.net_.encode(lookup[inp], table).reshape(-1, vecs.shape[1])[rows]
        cands = torch.unique(torch.cat([labels_item, negatives]))
        cand_vecs = nn.functional.normalize(table[lookup[cands + 1]], dim=-1)
        logits = hidden @ cand_vecs.T / self.temperature - self.logq_weight * self.net_.log_q[cands][None, :]
        if self.net_.content.shape[1]:
            user_c = self.net_.content_user(inp).reshape(-1, self.net_.content.shape[1])[rows]
            logits = logits + self.net_.log_content_weight.exp() * (user_c @ self.net_.content[cands].T)
        labels = torch.searchsorted(cands, labels_item)
        loss = nn.functional.cross_entropy(logits, labels)
        if self.content_aux_weight > 0:  # the same softmax with every candidate as a never-seen item
            cold = nn.functional.normalize(self.net_.items(cands, torch.zeros_like(cands, dtype=torch.bool)), dim=-1)
            aux = logits + (hidden @ (cold - cand_vecs).T) / self.temperature
            loss = loss + self.content_aux_weight * nn.functional.cross_entropy(aux, labels)
        optim.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optim.step()
        return float(loss.detach())

    # ------------------------------------------------------------------ serving
    def _item_table(self) -> torch.Tensor:
        """Normalized vectors of every item (row 0 = padding) with the cold/warm id rule; cached."""
        assert self.net_ is not None and self.n_items_ is not None
        if self._item_cache is None:
            with torch.no_grad():
                items = torch.arange(self.n_items_)
                vecs = self.net_.items(items, self.net_.items.warm)
                self._item_cache = torch.cat([torch.zeros(1, vecs.shape[1]), vecs])
        return self._item_cache

    def user_vectors(self, histories: Sequence[IntArray]) -> FloatArray:
        """Session vectors ``(len(histories), dim)``; an item's score is the inner product with its vector.

        ``dim = d`` plus, with the content skip path, the content width: ``[u / temperature ; w * c_u]``.
        """
        check_fitted(self, "net_")
        assert self.net_ is not None and self.n_items_ is not None
        check_item_range(histories, self.n_items_)
        self.net_.eval()
        table = self._item_table()
        out = np.zeros((len(histories), self.d + int(self.net_.content.shape[1])), dtype=np.float32)
        with torch.no_grad():
            for lo in range(0, len(histories), 512):
                chunk = histories[lo : lo + 512]
                tokens = torch.from_numpy(left_pad(chunk, self.max_len))
                width = max(1, int((tokens > 0).any(dim=0).sum()))
                tokens = tokens[:, -width:]
                parts = [self.net_.encode(tokens, table)[:, -1] / self.temperature]
                if self.net_.content.shape[1]:
                    parts.append(self.net_.log_content_weight.exp() * self.net_.content_user(tokens)[:, -1])
                out[lo : lo + len(chunk)] = torch.cat(parts, dim=1).numpy()
        empty = np.array([np.asarray(h).size == 0 for h in histories], dtype=bool)
        out[empty] = 0.0
        return out

    def export_item_vectors(self) -> tuple[IntArray, FloatArray]:
        """``(item indices, vectors (n_items, dim))`` for an inner-product index; cold items from content only.

        Each row is ``[tower vector ; content-kNN vector]`` (the second part only with the skip path); the
        tower vector is a unit vector, times the validated ``cold_scale`` for items never seen in training.
        """
        check_fitted(self, "net_")
        assert self.n_items_ is not None
        assert self.net_ is not None
        table = self._item_table()
        tower = nn.functional.normalize(table[1:], dim=-1)
        tower = torch.where(self.net_.items.warm[:, None], tower, tower * self.net_.cold_scale)
        vecs = torch.cat([tower, self.net_.content], dim=1)
        return np.arange(self.n_items_, dtype=np.int64), vecs.numpy().astype(np.float32)

    def embed_items(self, features: ItemFeatures) -> FloatArray:
        """Vectors ``(n, dim)`` of new items from content alone (attribute ids in the training vocabulary)."""
        check_fitted(self, "net_")
        assert self.net_ is not None
        tower = self.net_.items
        n = max(len(features.attributes), len(features.titles))
        if n == 0:
            raise ValidationError("features", "empty", "give attributes and/or titles for at least one item")
        attr_pad = _attribute_pad(features, n, tower.n_attr) if tower.n_attr else torch.zeros((n, 1), dtype=torch.long)
        titles = torch.zeros(n, EMBEDDING_DIM)
        if tower.title_proj is not None and features.titles:
            if len(features.titles) != n:
                raise ValidationError("features.titles", len(features.titles), f"need one entry per item ({n})")
            titles = torch.from_numpy(embed_texts(features.titles, encoder=self.text_encoder, cache_dir=self.cache_dir))
        with torch.no_grad():
            vecs = nn.functional.normalize(tower.from_parts(torch.zeros(n, self.d), attr_pad, titles), dim=-1)
            vecs = vecs * self.net_.cold_scale
        if self.net_.content.shape[1]:
            content, _ = self._content(features, n, self.net_.idf.numpy())
            vecs = torch.cat([vecs, content], dim=1)
        return vecs.numpy().astype(np.float32)

    def score(self, histories: Sequence[IntArray]) -> FloatArray:
        """Scores ``(len(histories), n_items)``: inner product of session and item vectors."""
        users = self.user_vectors(histories)
        _, items = self.export_item_vectors()  # inner product = (u . v) / temperature + w * content similarity
        return np.asarray(users @ items.T, dtype=np.float32)

    # -------------------------------------------------------------- persistence
    def save(self, path: Path) -> None:
        """Write ``model.safetensors`` and ``model.json`` (format version, config, sizes, history)."""
        check_fitted(self, "net_")
        assert self.net_ is not None
        path = save_weights(path, self.net_, _WEIGHTS)
        meta = {"n_items": self.n_items_, "n_attributes": self.net_.items.n_attr, "history": self.history_}
        doc = {"format_version": FORMAT_VERSION, "model": self.name, "config": self.get_config(), "meta": meta}
        (path / _META).write_text(json.dumps(doc, indent=2, sort_keys=True), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Self:
        """Read a model written by :meth:`save` (no text encoder needed: title vectors are stored)."""
        path = Path(path)
        if not (path / _META).is_file():
            raise ValidationError("path", str(path), f"no {_META} here: not a saved model")
        doc = json.loads((path / _META).read_text(encoding="utf-8"))
        if doc.get("format_version") != FORMAT_VERSION or doc.get("model") != cls.name:
            raise ValidationError("model.json", doc.get("model"), f"not a {cls.name} model of format {FORMAT_VERSION}")
        model = cls(**doc["config"])
        state = load_file(str(path / _WEIGHTS))
        state.setdefault("cold_scale", torch.tensor(1.0))  # saved before the blend search existed
        meta = doc["meta"]
        model.n_items_ = int(meta["n_items"])
        net = model._build(
            model.n_items_, int(meta["n_attributes"]), state["items.attr_pad"], state["items.titles"], state["content"],
            state["idf"],
        )
        net.load_state_dict(state)
        net.eval()
        model.net_, model.history_ = net, list(meta.get("history", []))
        return model
