"""User-level differentially private training of a SASRec-style sequential recommender (DP-SGD via Opacus).

:class:`DPSeqRec` is a small causal self-attention next-item model built only from layers whose
per-sample gradients Opacus computes with its hooks (``nn.Embedding``, ``nn.Linear``, ``nn.LayerNorm``;
attention is written out with linear projections because ``nn.MultiheadAttention`` is not supported, and
the output layer is a separate ``nn.Linear`` because a weight tied to the input table is used outside
its module's forward, where no hook sees it). It is the same model with and without DP, so the two can
be compared; it does not replace :class:`shopkeep.models.sasrec.SASRec`, whose training is unchanged.

**One shopper = one training row** (their last ``max_len + 1`` items, predicting the next item at every
position; the row's loss is the mean over its positions). Per-sample gradient clipping is therefore
per-shopper clipping, Poisson sampling of rows is sampling of shoppers, and the (ε, δ) that Opacus's
accountant reports is **user-level**: adding or removing one shopper's whole history changes the
distribution of the trained weights by at most that. With ``dp_epsilon`` set, the noise multiplier is
calibrated so that ``epochs`` epochs spend at most ``dp_epsilon`` at ``dp_delta`` (default ``1 / (10 n)``
for ``n`` training shoppers); ``epsilon_`` is the accountant's figure after training.

torch and opacus are imported by this module only.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Self

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from shopkeep.errors import ValidationError
from shopkeep.models.base import FloatArray, IntArray, Interactions, check_fitted, check_item_range, left_pad

__all__ = ["DPSeqRec"]


class _Block(nn.Module):
    """Pre-LayerNorm causal self-attention + feed-forward, from Linear/LayerNorm layers only."""

    def __init__(self, d: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.ff1, self.ff2 = nn.Linear(d, 2 * d), nn.Linear(2 * d, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, blocked: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, L, d)``; ``blocked`` ``(B, 1, L, L)`` True where a query may not attend."""
        b, length, d = x.shape
        h = self.norm1(x)
        heads = [t.view(b, length, self.n_heads, d // self.n_heads).transpose(1, 2) for t in (self.q(h), self.k(h),
                                                                                             self.v(h))]
        att = (heads[0] @ heads[1].transpose(-1, -2)) / math.sqrt(d // self.n_heads)
        att = self.drop(att.masked_fill(blocked, -1e9).softmax(-1))
        x = x + self.drop(self.o((att @ heads[2]).transpose(1, 2).reshape(b, length, d)))
        out: torch.Tensor = x + self.drop(self.ff2(F.gelu(self.ff1(self.norm2(x)))))
        return out


class _Net(nn.Module):
    def __init__(self, n_items: int, d: int, n_layers: int, n_heads: int, max_len: int, dropout: float,
                 sampled: bool = False) -> None:
        super().__init__()
        self.item_emb = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.pos_emb = nn.Embedding(max_len, d)
        self.blocks = nn.ModuleList(_Block(d, n_heads, dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d)
        # sampled softmax scores candidates through an output *table* (a module call per row, which the
        # per-sample hooks see); the full softmax through a Linear over all items
        self.out: nn.Module = nn.Embedding(n_items + 1, d, padding_idx=0) if sampled else nn.Linear(d, n_items)
        if isinstance(self.out, nn.Embedding):  # Linear-like scale: N(0, 1) rows would start logits at std ~sqrt(d)
            nn.init.uniform_(self.out.weight, -1 / math.sqrt(d), 1 / math.sqrt(d))
            with torch.no_grad():
                self.out.weight[0].zero_()
        self.drop = nn.Dropout(dropout)
        self.max_len = max_len

    def forward(self, seqs: torch.Tensor, candidates: torch.Tensor | None = None, last_only: bool = False
                ) -> torch.Tensor:
        """Logits for the next item after every position of left-padded ``seqs`` ``(B, L)``: over all items
        ``(B, L, n_items)`` (``(B, n_items)`` for the last position only with ``last_only``), or with
        ``candidates`` ``(B, L + K)`` (each position's target token, then K negative tokens)
        ``(B, L, 1 + K)``: the target's logit first, a negative equal to it masked out."""
        b, length = seqs.shape
        seqs = seqs.contiguous()  # Opacus's embedding norm sampler views the ids flat
        pos = torch.arange(self.max_len - length, self.max_len, device=seqs.device).expand(b, length).contiguous()
        x = self.drop(self.item_emb(seqs) + self.pos_emb(pos))
        causal = torch.ones(length, length, dtype=torch.bool, device=seqs.device).tril()
        allowed = (causal[None] & (seqs > 0)[:, None, :]) | torch.eye(length, dtype=torch.bool, device=seqs.device)
        for block in self.blocks:
            x = block(x, ~allowed[:, None])
        h = self.norm(x[:, -1]) if last_only else self.norm(x)
        if candidates is None:
            if isinstance(self.out, nn.Linear):
                full: torch.Tensor = self.out(h)
                return full
            table: torch.Tensor = self.out.weight  # type: ignore[assignment]
            scores: torch.Tensor = h @ table[1:].T  # scoring only: training goes through the module call below
            return scores
        e = self.out(candidates)
        positive = (h * e[:, :length]).sum(-1, keepdim=True)
        clash = candidates[:, None, length:] == candidates[:, :length, None]
        negative = (h @ e[:, length:].transpose(1, 2)).masked_fill(clash, -1e9)
        return torch.cat([positive, negative], -1)


def _row_losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-row mean cross-entropy over the row's non-padding positions (one value per shopper)."""
    labels = targets - 1  # token -> item index; padding becomes -1 and is ignored
    flat = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-1,
                           reduction="none").view(targets.shape)
    return flat.sum(1) / (targets > 0).sum(1).clamp(min=1)


class _RowLoss(nn.Module):
    """:func:`_row_losses` as a criterion with a ``reduction`` ("none": one loss per shopper, "mean"), the
    form Opacus's ghost clipping wraps to get per-shopper losses."""

    def __init__(self) -> None:
        super().__init__()
        self.reduction = "mean"

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-row losses, reduced as ``self.reduction`` says."""
        rows = _row_losses(logits, targets)
        return rows if self.reduction == "none" else rows.mean()


class DPSeqRec:
    """Sequential recommender with an optional user-level DP-SGD training path (see the module docstring).

    ``dp_epsilon=None`` trains with plain Adam on shuffled mini-batches; otherwise DP-Adam (Opacus:
    per-shopper clipping to ``dp_max_grad_norm``, Gaussian noise, Poisson sampling with expected batch
    ``batch_size``) for exactly ``epochs`` epochs; ``dp_accountant`` "rdp" (Rényi DP: fast, a little
    conservative) or "prv" (privacy random variables: tighter, slow to calibrate). ``negatives`` None trains
    on the full softmax over all items; an integer K trains a sampled softmax (the target against K uniform
    negatives shared by the batch, a few times cheaper on a large catalog; scoring is always over all items).
    ``dp_clipping`` "ghost"
    (Opacus's ghost clipping: per-shopper gradient *norms* from activations and output gradients, then a
    second backward pass with each shopper's loss scaled by its clip factor; never materializes one
    gradient per shopper of the ``d x n_items`` output layer and item table, so large batches fit) or
    "hooks" (per-shopper gradients; same clipping, same privacy, slower and ``batch x n_items x d``
    floats of memory). After fit:
    ``epsilon_``/``delta_`` (None without DP), ``noise_multiplier_`` and one ``history_`` record per epoch.
    """

    name = "sasrec_dp"

    def __init__(self, *, d: int = 64, n_layers: int = 1, n_heads: int = 2, max_len: int = 20, dropout: float = 0.2,
                 lr: float = 1e-3, batch_size: int = 256, epochs: int = 10, dp_epsilon: float | None = None,
                 dp_delta: float | None = None, dp_max_grad_norm: float = 1.0, dp_accountant: str = "rdp",
                 dp_clipping: str = "ghost", negatives: int | None = None, num_threads: int = 2,
                 seed: int = 0) -> None:
        self.d, self.n_layers, self.n_heads, self.max_len, self.dropout = d, n_layers, n_heads, max_len, dropout
        self.lr, self.batch_size, self.epochs = lr, batch_size, epochs
        self.dp_epsilon, self.dp_delta, self.dp_max_grad_norm = dp_epsilon, dp_delta, dp_max_grad_norm
        self.dp_accountant, self.dp_clipping, self.negatives = dp_accountant, dp_clipping, negatives
        self.num_threads, self.seed = num_threads, seed
        self.net_: _Net | None = None
        self.n_items_: int | None = None
        self.epsilon_: float | None = None
        self.delta_: float | None = None
        self.noise_multiplier_: float | None = None
        self.history_: list[dict[str, float]] = []

    def _check_params(self) -> None:
        for key in ("d", "n_layers", "n_heads", "max_len", "batch_size", "epochs"):
            if int(getattr(self, key)) <= 0:
                raise ValidationError(key, getattr(self, key), "must be > 0")
        if self.d % self.n_heads:
            raise ValidationError("n_heads", self.n_heads, f"must divide d={self.d}")
        if self.dp_epsilon is not None and not self.dp_epsilon > 0:
            raise ValidationError("dp_epsilon", self.dp_epsilon, "must be > 0 (or None for no DP)")
        if self.dp_delta is not None and not 0 < self.dp_delta < 1:
            raise ValidationError("dp_delta", self.dp_delta, "must be in (0, 1)")
        if self.dp_accountant not in {"rdp", "prv"}:
            raise ValidationError("dp_accountant", self.dp_accountant, "must be 'rdp' or 'prv'")
        if self.negatives is not None and int(self.negatives) <= 0:
            raise ValidationError("negatives", self.negatives, "must be > 0 (or None for the full softmax)")
        if self.dp_clipping not in {"ghost", "hooks"}:
            raise ValidationError("dp_clipping", self.dp_clipping, "must be 'ghost' or 'hooks'")
        if not self.dp_max_grad_norm > 0:
            raise ValidationError("dp_max_grad_norm", self.dp_max_grad_norm, "must be > 0")

    def rows(self, sequences: Sequence[IntArray]) -> tuple[torch.Tensor, torch.Tensor]:
        """One (input, target) token row per sequence of >= 2 items: its last ``max_len + 1`` items."""
        window = [np.asarray(s, dtype=np.int64)[-(self.max_len + 1):] for s in sequences if len(s) >= 2]
        if not window:
            raise ValidationError("sequences", len(sequences), "need at least one sequence of >= 2 items")
        inputs = left_pad([w[:-1] for w in window], self.max_len)
        targets = left_pad([w[1:] for w in window], self.max_len)
        return torch.from_numpy(inputs), torch.from_numpy(targets)

    def fit(self, train: Interactions, *, on_epoch: Callable[[dict[str, float]], None] | None = None) -> Self:
        """Train on ``train.sequences`` (one row per shopper); DP-SGD when ``dp_epsilon`` is set.

        ``on_epoch(record)`` runs after each epoch with the model usable (``score``/``row_losses``; in eval
        mode): a caller can watch a validation metric. With DP, the privacy spent is that of all
        ``epochs`` whatever the caller does with it."""
        self._check_params()
        inputs, targets = self.rows(train.sequences)
        torch.set_num_threads(self.num_threads)
        torch.manual_seed(self.seed)
        self.n_items_ = train.n_items
        net = _Net(train.n_items, self.d, self.n_layers, self.n_heads, self.max_len, self.dropout,
                   sampled=self.negatives is not None)
        optim = torch.optim.Adam(net.parameters(), lr=self.lr)
        gen = torch.Generator().manual_seed(self.seed)
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(inputs, targets),
                                             batch_size=self.batch_size, shuffle=True, generator=gen)
        engine = None
        model: nn.Module = net
        criterion: Any = _RowLoss()
        if self.dp_epsilon is not None:
            model, optim, criterion, loader, engine = self._make_private(net, optim, criterion, loader, len(inputs))
        self.history_ = []
        for epoch in range(self.epochs):
            model.train()
            total, steps = 0.0, 0
            for inp, tgt in loader:
                if inp.shape[0] == 0:
                    continue  # an empty Poisson batch: skipping it spends no less privacy than stepping
                width = max(1, int((inp > 0).sum(1).max()))
                loss = criterion(*self._forward(model, inp[:, -width:], tgt[:, -width:], gen))
                optim.zero_grad(set_to_none=True)
                with warnings.catch_warnings():  # Opacus's hooks on a module whose input needs no gradient
                    warnings.simplefilter("ignore", UserWarning)
                    loss.backward()
                optim.step()
                total, steps = total + float(loss.detach()), steps + 1
            record = {"epoch": float(epoch + 1), "loss": total / max(steps, 1)}
            if engine is not None:
                record["epsilon"] = float(engine.get_epsilon(self.delta_))
            self.history_.append(record)
            if on_epoch is not None:
                self.net_ = net
                net.eval()
                on_epoch(record)
        if engine is not None:
            self.epsilon_ = float(engine.get_epsilon(self.delta_))
        self.net_ = net
        net.eval()
        return self

    def _forward(self, model: nn.Module, inp: torch.Tensor, tgt: torch.Tensor, gen: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, targets) of one batch: all items, or the target and ``negatives`` uniform negatives
        shared by the batch (drawn independently of the data, so each row's loss depends on that row only
        and per-shopper clipping still bounds a shopper's influence)."""
        if self.negatives is None:
            return model(inp), tgt
        assert self.n_items_ is not None
        negs = torch.randint(1, self.n_items_ + 1, (int(self.negatives),), generator=gen)
        logits = model(inp, torch.cat([tgt, negs.expand(inp.shape[0], -1)], 1))
        return logits, (tgt > 0).long()  # token 1 = "the first candidate" (label 0); padding stays 0

    def _make_private(self, net: _Net, optim: Any, criterion: Any, loader: Any, n_rows: int
                      ) -> tuple[Any, Any, Any, Any, Any]:
        from opacus import PrivacyEngine  # type: ignore[import-untyped]

        self.delta_ = float(self.dp_delta) if self.dp_delta is not None else 1.0 / (10 * n_rows)
        with warnings.catch_warnings():  # Opacus warns about secure RNG: the seeded generator is deliberate
            warnings.simplefilter("ignore")
            engine = PrivacyEngine(accountant=self.dp_accountant)
            made = engine.make_private_with_epsilon(
                module=net, optimizer=optim, criterion=criterion, data_loader=loader,
                target_epsilon=float(self.dp_epsilon or 0), target_delta=self.delta_, epochs=self.epochs,
                max_grad_norm=self.dp_max_grad_norm, poisson_sampling=True,
                noise_generator=torch.Generator().manual_seed(self.seed + 1), grad_sample_mode=self.dp_clipping)
        if self.dp_clipping == "ghost":
            model, optim, criterion, loader = made
        else:
            model, optim, loader = made
        self.noise_multiplier_ = float(optim.noise_multiplier)
        return model, optim, criterion, loader, engine

    def _logits_last(self, histories: Sequence[IntArray]) -> torch.Tensor:
        check_fitted(self, "net_")
        assert self.net_ is not None and self.n_items_ is not None
        check_item_range(histories, self.n_items_)
        seqs = torch.from_numpy(left_pad(histories, self.max_len))
        with torch.no_grad():
            # only the last position is projected onto the items: slicing [:, -1] out of every position's
            # logits kept each chunk's (512, max_len, n_items) tensor alive until the concatenation
            return torch.cat([self.net_(seqs[lo:lo + 512], last_only=True) for lo in range(0, len(histories), 512)]
                             or [torch.zeros(0, self.n_items_)])

    def score(self, histories: Sequence[IntArray]) -> FloatArray:
        """Scores ``(len(histories), n_items)`` for the next item after each history."""
        out: FloatArray = self._logits_last(histories).numpy().astype(np.float32)
        return out

    def row_losses(self, sequences: Sequence[IntArray]) -> FloatArray:
        """Each sequence's mean next-item cross-entropy, built as a training row (membership-inference signal)."""
        check_fitted(self, "net_")
        assert self.net_ is not None
        inputs, targets = self.rows(sequences)
        with torch.no_grad():
            parts = [_row_losses(self.net_(inputs[lo:lo + 512]), targets[lo:lo + 512])
                     for lo in range(0, len(inputs), 512)]
        out: FloatArray = torch.cat(parts).numpy().astype(np.float32)
        return out
