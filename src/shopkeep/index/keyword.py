"""Keyword index: BM25F over weighted text fields, scored with scipy sparse matrices, batch first.

Tokens (:func:`tokenize`): lower case, accents folded to ASCII, split on anything that is not a
letter or digit; a hyphenated or slashed word gives its parts *and* the joined form
("fragrance-free" → ``fragrance``, ``free``, ``fragrancefree``); a light stemmer drops plural
endings (``-ies`` → ``-y``, ``-es`` after s/x/z/ch/sh, ``-s`` but not ``-ss``/``-us``/``-is``).

Scoring is BM25F: per document ``tf~ = Σ_f w_f · tf_f / (1 - b + b · len_f / avglen_f)``, then
``idf(t) · tf~ · (k1 + 1) / (k1 + tf~)`` summed over the query's distinct terms, with
``idf = ln(1 + (N - df + 0.5) / (df + 0.5))``. Items are added, replaced in place and removed by id
(:meth:`KeywordIndex.upsert`, :meth:`KeywordIndex.remove`); the scoring matrix is rebuilt lazily
on the next search. A ``mask`` (bool per row of :attr:`KeywordIndex.ids`) restricts a search.

>>> idx = KeywordIndex({"title": 2.0, "body": 1.0})
>>> idx.upsert(["a", "b", "c"], [{"title": "Fragrance-Free Moisturizer"}, {"title": "Rose Perfume"},
...                              {"title": "Moisturizers", "body": "with rose water"}])
>>> idx.search(["moisturizer"], k=5).ids
(('c', 'a'),)
>>> idx.search(["fragrance free", "roses"], k=1).ids
(('a',), ('b',))
>>> tokenize("Crème Fraîche & Fragrance-free Cleansers")
['creme', 'fraiche', 'fragrance', 'free', 'fragrancefree', 'cleanser']
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from shopkeep.errors import ValidationError

__all__ = ["KeywordIndex", "KeywordResult", "fold", "stem", "tokenize"]

_WORD = re.compile(r"[a-z0-9]+(?:[-/'][a-z0-9]+)*")
_KEEP_S = ("ss", "us", "is", "ous")
_ES_AFTER = ("sses", "xes", "zes", "ches", "shes")


def fold(text: str) -> str:
    """Lower case with accents folded to ASCII (``"Crème"`` → ``"creme"``)."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return decomposed.encode("ascii", "ignore").decode("ascii")


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """Drop a plural ending: ``berries`` → ``berry``, ``brushes`` → ``brush``, ``serums`` → ``serum``.

    >>> [stem(w) for w in ("berries", "brushes", "glass", "serums", "gloss", "shoes", "spf", "3s")]
    ['berry', 'brush', 'glass', 'serum', 'gloss', 'shoe', 'spf', '3s']
    """
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(_ES_AFTER):
        return word[:-2]
    if word.endswith("s") and not word.endswith(_KEEP_S):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Index/query tokens of ``text`` (see the module docstring)."""
    out: list[str] = []
    for match in _WORD.finditer(fold(text)):
        word = match.group(0)
        if "-" in word or "/" in word or "'" in word:
            parts = [p for p in re.split(r"[-/']", word) if p]
            if "'" in word and len(parts) == 2 and parts[1] in ("s", "t"):
                out.append(stem(parts[0]))  # possessive: kiehl's -> kiehl
                continue
            out.extend(stem(p) for p in parts)
            out.append(stem("".join(parts)))
        else:
            out.append(stem(word))
    return out


@dataclass(frozen=True)
class KeywordResult:
    """Top-k per query: ``ids[q]`` best first, ``rows[q]`` their row numbers, ``scores[q]`` (float32)."""

    ids: tuple[tuple[str, ...], ...]
    rows: tuple[npt.NDArray[np.int64], ...]
    scores: tuple[npt.NDArray[np.float32], ...]


class KeywordIndex:
    """BM25F over the text fields named in ``fields`` (name → weight); see the module docstring."""

    def __init__(self, fields: Mapping[str, float], k1: float = 1.2, b: float = 0.75) -> None:
        if not fields or any(not isinstance(w, int | float) or w <= 0 for w in fields.values()):
            raise ValidationError("fields", dict(fields), "need at least one field, each with a weight > 0")
        if not 0.0 <= b <= 1.0:
            raise ValidationError("b", b, "must be in [0, 1]")
        if k1 <= 0:
            raise ValidationError("k1", k1, "must be > 0")
        self.fields = dict(fields)
        self.k1 = float(k1)
        self.b = float(b)
        self.vocab: dict[str, int] = {}
        self._ids: list[str] = []
        self._rows: dict[str, int] = {}
        self._counts = {f: sp.csr_matrix((0, 0), dtype=np.float32) for f in self.fields}
        self._term_doc: sp.csr_matrix | None = None
        self._df: npt.NDArray[np.float64] = np.zeros(0)

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> tuple[str, ...]:
        """Indexed ids in row order (masks and row numbers refer to this order)."""
        return tuple(self._ids)

    def copy(self) -> KeywordIndex:
        """An independent copy (later upserts/removes on either leave the other unchanged)."""
        out = KeywordIndex(self.fields, self.k1, self.b)
        out.vocab = dict(self.vocab)
        out._ids = list(self._ids)
        out._rows = dict(self._rows)
        out._counts = dict(self._counts)  # matrices are replaced, never mutated, by upsert/remove
        out._term_doc, out._df = self._term_doc, self._df
        return out

    def _encode(self, texts: Sequence[str]) -> sp.csr_matrix:
        indptr, cols = [0], []
        for text in texts:
            for tok in tokenize(text):
                col = self.vocab.get(tok)
                if col is None:
                    col = self.vocab[tok] = len(self.vocab)
                cols.append(col)
            indptr.append(len(cols))
        data = np.ones(len(cols), dtype=np.float32)
        m = sp.csr_matrix((data, np.asarray(cols, dtype=np.int64), np.asarray(indptr)),
                          shape=(len(texts), max(len(self.vocab), 1)))
        m.sum_duplicates()
        return m

    @staticmethod
    def _widen(m: sp.csr_matrix, width: int) -> sp.csr_matrix:
        return sp.csr_matrix((m.data, m.indices, m.indptr), shape=(m.shape[0], width))

    def upsert(self, ids: Sequence[str], docs: Sequence[Mapping[str, str]]) -> None:
        """Index ``docs`` (field → text; unknown fields refused) under ``ids``; known ids keep their row."""
        ids = list(ids)
        if len(ids) != len(docs):
            raise ValidationError("docs", len(docs), f"need one document per id ({len(ids)})")
        if len(set(ids)) != len(ids) or any(not isinstance(i, str) or not i for i in ids):
            raise ValidationError("ids", ids[:5], "ids must be distinct non-empty strings")
        for n, doc in enumerate(docs):
            extra = set(doc) - set(self.fields)
            if extra:
                raise ValidationError(f"docs[{n}]", sorted(extra), f"unknown field; fields are {sorted(self.fields)}")
        batch = {f: self._encode([str(doc.get(f, "") or "") for doc in docs]) for f in self.fields}
        width = max(len(self.vocab), 1)
        n_old = len(self._ids)
        order = np.arange(n_old, dtype=np.int64)
        new_ids: list[str] = []
        for j, item_id in enumerate(ids):
            row = self._rows.get(item_id)
            if row is None:
                new_ids.append(item_id)
            else:
                order[row] = n_old + j
        fresh = [n_old + j for j, i in enumerate(ids) if i not in self._rows]
        order = np.concatenate([order, np.asarray(fresh, dtype=np.int64)])
        for f in self.fields:
            stacked = sp.vstack([self._widen(self._counts[f], width), self._widen(batch[f], width)], format="csr")
            self._counts[f] = stacked[order]
        for item_id in new_ids:
            self._rows[item_id] = len(self._ids)
            self._ids.append(item_id)
        self._term_doc = None

    def remove(self, ids: Sequence[str]) -> None:
        """Drop ``ids``; an unknown id raises :class:`ValidationError` and nothing is removed."""
        unknown = [i for i in ids if i not in self._rows]
        if unknown:
            raise ValidationError("ids", unknown[:5], "not in the keyword index")
        drop = {self._rows[i] for i in ids}
        keep = np.asarray([r for r in range(len(self._ids)) if r not in drop], dtype=np.int64)
        for f in self.fields:
            self._counts[f] = self._counts[f][keep]
        self._ids = [self._ids[r] for r in keep.tolist()]
        self._rows = {i: r for r, i in enumerate(self._ids)}
        self._term_doc = None

    def _build(self) -> sp.csr_matrix:
        """The (terms × rows) matrix of per-term BM25F contributions."""
        n, width = len(self._ids), max(len(self.vocab), 1)
        tf = sp.csr_matrix((n, width), dtype=np.float64)
        for f, weight in self.fields.items():
            counts = self._widen(self._counts[f], width).astype(np.float64)
            lengths = np.asarray(counts.sum(axis=1)).ravel()
            avg = float(lengths.mean()) if n and lengths.mean() > 0 else 1.0
            norm = weight / (1.0 - self.b + self.b * lengths / avg)
            tf = tf + sp.diags(norm) @ counts
        tf = sp.csr_matrix(tf)
        df = np.bincount(tf.indices, minlength=width).astype(np.float64)
        idf = np.log1p((n - df + 0.5) / (df + 0.5))
        sat = tf.copy()
        sat.data = sat.data * (self.k1 + 1.0) / (self.k1 + sat.data)
        sat = sp.csr_matrix(sat @ sp.diags(idf))
        self._df = df
        return sp.csr_matrix(sat.T, dtype=np.float32)

    def query_matrix(self, queries: Sequence[str]) -> sp.csr_matrix:
        """Binary ``(n_queries, n_terms)`` of the queries' distinct known terms."""
        indptr, cols = [0], []
        for q in queries:
            found = {self.vocab[t] for t in tokenize(q) if t in self.vocab}
            cols.extend(sorted(found))
            indptr.append(len(cols))
        data = np.ones(len(cols), dtype=np.float32)
        return sp.csr_matrix((data, np.asarray(cols, dtype=np.int64), np.asarray(indptr)),
                             shape=(len(queries), max(len(self.vocab), 1)))

    def scores(self, queries: Sequence[str]) -> sp.csr_matrix:
        """Sparse ``(n_queries, len(self))`` BM25F scores (zero where no query term occurs)."""
        return sp.csr_matrix(self.query_matrix(queries) @ self._postings())

    def document_frequency(self, term: str) -> int:
        """How many indexed rows hold ``term`` (already a token) in any field."""
        self._postings()
        col = self.vocab.get(term)
        return 0 if col is None or col >= self._df.size else int(self._df[col])

    def _postings(self) -> sp.csr_matrix:
        if self._term_doc is None:
            self._term_doc = self._build()
        return self._term_doc

    def score_rows(self, query: str) -> npt.NDArray[np.float32]:
        """Dense ``(len(self),)`` BM25F scores of one query: its terms' postings summed with one bincount."""
        postings = self._postings()
        width = postings.shape[0]
        terms = sorted({self.vocab[t] for t in tokenize(query) if self.vocab.get(t, width) < width})
        n = len(self._ids)
        if not terms:
            return np.zeros(n, dtype=np.float32)
        ptr = postings.indptr
        if len(terms) == 1:
            lo, hi = ptr[terms[0]], ptr[terms[0] + 1]
            out = np.zeros(n, dtype=np.float32)
            out[postings.indices[lo:hi]] = postings.data[lo:hi]
            return out
        idx = np.concatenate([postings.indices[ptr[t] : ptr[t + 1]] for t in terms])
        val = np.concatenate([postings.data[ptr[t] : ptr[t + 1]] for t in terms])
        return np.bincount(idx, weights=val, minlength=n).astype(np.float32)

    def search(self, queries: Sequence[str], k: int, mask: npt.NDArray[np.bool_] | None = None) -> KeywordResult:
        """The ``k`` best-scoring rows per query with a score > 0 (``mask``: allowed rows), best first;
        ties break by row. Per query the cost is the length of its terms' postings plus one pass over
        the rows (no sparse matrix product)."""
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise ValidationError("k", k, "must be a positive integer")
        if mask is not None and (mask.dtype != np.bool_ or mask.shape != (len(self._ids),)):
            raise ValidationError("mask", getattr(mask, "shape", mask), f"must be a bool array of {len(self._ids)}")
        ids, rows, scores = [], [], []
        for q in queries:
            dense = self.score_rows(q)
            if mask is not None:
                dense[~mask] = 0.0
            cols = np.flatnonzero(dense > 0)
            vals = dense[cols]
            if cols.size > k:
                part = np.argpartition(-vals, k - 1)[:k]
                cols, vals = cols[part], vals[part]
            order = np.lexsort((cols, -vals))
            cols, vals = cols[order].astype(np.int64), vals[order].astype(np.float32)
            rows.append(cols)
            scores.append(vals)
            ids.append(tuple(self._ids[c] for c in cols.tolist()))
        return KeywordResult(tuple(ids), tuple(rows), tuple(scores))
