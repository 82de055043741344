"""The Engine: the composition root of the write path and the read path (ARCHITECTURE.md).

WRITE ``ingest(raw_events)``: the :class:`~shopkeep.pipeline.ingest.Ingestor` validates, dedupes and
appends to the event log; the events it newly stored are then folded *synchronously* into the hot
session features (:class:`~shopkeep.features.SessionFeatures`, in the online state) and the live
popularity counts, so the next request on any worker sharing the online state sees them.

READ ``recommend(request)``: features.context → policy eligibility mask (pushed into retrieval) →
retriever (k = 500, named sources, fused) → ranker → policy (rules, trace) → :class:`Slate`, which is
logged to the served-slate log (trace_id, items, positions, sources, propensities, served features
incl. each served item's fused score, fused position and per-source score/rank, which is what
``shopkeep train`` trains the re-ranker on) so impressions and clicks join to it.

Ranker: the learned re-ranker of the loaded artifacts (``<version>/ranker``, LightGBM) with the
objective of ``config.ranking``, or the non-learned ranker when the artifacts hold none, LightGBM is
missing or ``ranking.learned`` is off; ``explain`` names which one served and why.

Exploration (:mod:`shopkeep.pipeline.exploration`, ``config.explore``): on the configured surfaces the
policy's slate is mixed with a random one from a small eligible pool, seeded per request (a replay on
the same state reproduces the slate), so the logged propensities are exact and lie in (0, 1); pinned
positions and surfaces without exploration log 1.0.

Shared popularity: with a bus configured (``[bus] uri``) and the online state in Redis,
``Engine.open`` reads the ``popular`` source's counts from the aggregates ``shopkeep worker`` keeps
beside the online state (:class:`~shopkeep.pipeline.stages.SharedPopularSource`), so every API worker
serves the same popularity; otherwise each process counts the events it ingests.

Returns-aware fit (:class:`~shopkeep.pipeline.fit_stage.FitStage`): built at start from the event log's
purchases and returns, updated on ingest. When a served item has size variants and the shopper's usual
size is known, the slate shows the variant in the suggested size (when it is eligible) and the item's
``reasons`` and ``fit`` (and ``explain``) carry the fit note and its evidence.

Stages are swapped atomically: ``upsert_items`` builds a new catalog snapshot and source set
(copy-on-write) and ``load_artifacts`` a new source set from a trained version; each request reads the
current :class:`_Bindings` once, so a request in flight finishes on the version it started with.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from shopkeep.catalog import CatalogRepository
from shopkeep.catalog.schema import item_to_dict, parse_item
from shopkeep.catalog.snapshot import CatalogSnapshot
from shopkeep.config import Config
from shopkeep.errors import ShopkeepError, ValidationError
from shopkeep.events.bus_aggregates import SharedAggregates, open_aggregates
from shopkeep.events.log import EVENTS_LOG, SlateRecord
from shopkeep.events.schema import parse_event
from shopkeep.features import FeatureConfig, SessionFeatures
from shopkeep.features.context import Context, ContextRequest
from shopkeep.pipeline.artifacts import (
    RANKER,
    LoadedArtifacts,
    latest_artifacts,
    load_artifacts,
    read_manifest,
    read_popularity,
)
from shopkeep.pipeline.exploration import Explored, SlateExplorer
from shopkeep.pipeline.fit_stage import FitStage
from shopkeep.pipeline.ingest import Ingestor, IngestReport
from shopkeep.pipeline.policy_stage import PolicyStage, default_policy_stage
from shopkeep.pipeline.slatelog import SlateLogger
from shopkeep.pipeline.stages import SourceSet, build_sources
from shopkeep.pipeline.visit_prior import VisitPriorStage
from shopkeep.profiles import ProfileRepository
from shopkeep.profiles.model import Profile
from shopkeep.ranking import Objective, Ranker, ScoredItem
from shopkeep.retrieval.affinity import AffinitySource
from shopkeep.retrieval.base import FusedCandidate
from shopkeep.retrieval.fusion import FusedArrays
from shopkeep.storage import open_online_state, open_store
from shopkeep.storage.base import AppendResult, LogRecord, OnlineState, Store
from shopkeep.types import Event, Item, Money

__all__ = ["RETRIEVAL_K", "Engine", "Slate", "SlateItem"]

log = logging.getLogger("shopkeep.engine")

#: Candidates asked from retrieval per request.
RETRIEVAL_K = 500


@dataclass(frozen=True, slots=True)
class SlateItem:
    """One recommended item as answered: ``position`` 0-based; ``propensity`` of being shown there."""

    item_id: str
    score: float
    price: Money | None
    position: int
    sources: tuple[str, ...]
    propensity: float
    reasons: tuple[str, ...]
    #: The size advice behind a shown variant (``FitAdvice.to_dict()`` + ``variant_of``), None without one.
    fit: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Slate:
    """A served slate: ``trace_id`` joins it to later impressions/clicks; ``explain`` when asked for."""

    trace_id: str
    surface: str
    items: tuple[SlateItem, ...]
    explain: Mapping[str, Any] | None = None
    version: str | None = None
    #: What the slate log keeps beyond the items: served candidates' features, exploration, ranker.
    served: Mapping[str, Any] | None = None


@dataclass(frozen=True, eq=False)
class _Bindings:
    """Everything a request reads, swapped as one reference."""

    sources: SourceSet
    policy: PolicyStage
    ranker: Ranker
    ranker_info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def snapshot(self) -> CatalogSnapshot:
        return self.sources.snapshot


class _AppendRecorder:
    """Delegates to a Store and remembers which event ids the last appends newly inserted and which
    were already stored with the same payload (duplicates: maybe a batch re-sent after a crash)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.inserted: list[str] = []
        self.duplicates: list[str] = []

    def append(self, log_name: str, records: Sequence[LogRecord]) -> AppendResult:
        result = self._store.append(log_name, records)
        if log_name == EVENTS_LOG:
            self.inserted.extend(result.inserted)
            self.duplicates.extend(result.duplicates)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class Engine:
    """Both paths over one durable ``store`` and one ``online`` state (see the module docstring)."""

    def __init__(self, store: Store, online: OnlineState, config: Config | None = None, *,
                 features: FeatureConfig | None = None, artifacts: LoadedArtifacts | None = None,
                 policy: PolicyStage | None = None, ranker: Ranker | None = None, log_slates: bool = True,
                 policy_refresh_s: float = 2.0, retrieval_k: int = RETRIEVAL_K,
                 aggregates: SharedAggregates | None = None) -> None:
        self.store = store
        #: The shared aggregates popularity is read from (None: this process counts its own events).
        self.aggregates = aggregates
        self.online = online
        self.config = config or Config()
        self._recorder = _AppendRecorder(store)
        self._ingestor = Ingestor(self._recorder, self.config)  # type: ignore[arg-type]
        self._write_lock = threading.Lock()
        self._swap_lock = threading.Lock()
        self._closed = threading.Event()
        self.catalog = CatalogRepository(store)
        self.profiles = ProfileRepository(store)
        start = time.perf_counter()
        snapshot = CatalogSnapshot.from_repository(self.catalog)
        snapshot.warm()  # indexes built before the first request, not during it (~1 s at 100k items)
        popularity = read_popularity(artifacts.path) if artifacts is not None else None
        #: The visit-context prior (device, referrer, campaign, channel) for shoppers with no history.
        self.visit_prior = VisitPriorStage(snapshot).fit(store)
        sources = build_sources(snapshot, artifacts, popularity, shared=aggregates, visit_prior=self.visit_prior)
        self._fixed_ranker = ranker is not None
        chosen_ranker, info = (ranker, {"kind": "learned" if ranker.learned else "non-learned", "reason": "given"}) \
            if ranker is not None else self._ranker_for(artifacts)
        self._bindings = _Bindings(sources, policy or default_policy_stage(store, online), chosen_ranker, info)
        self.explorer = SlateExplorer(self.config.explore)
        self.policy_refresh_s = policy_refresh_s
        #: Candidates fused per request; retrieval, ranking and policy cost grow about linearly with it.
        self.retrieval_k = retrieval_k
        self._policy_checked = time.monotonic()
        self.features = SessionFeatures(online, lambda: self._bindings.snapshot, features)
        self.fit = FitStage(store).fit(snapshot.items)
        self.slate_log = SlateLogger(store) if log_slates else None
        self.started_at = datetime.now(UTC)
        log.info("engine ready: %d items, artifacts %s, %.2f s", snapshot.n, sources.version,
                 time.perf_counter() - start)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def open(cls, config: Config, *, online_uri: str | None = None, artifacts_dir: str | Path | None = None,
             log_slates: bool = True, retrieval_k: int = RETRIEVAL_K) -> Engine:
        """An engine over ``config.storage`` with the newest artifacts under ``serving.artifacts_dir``."""
        store = open_store(config.storage.uri)
        online = open_online_state(online_uri or config.storage.online_uri)
        root = Path(artifacts_dir or config.serving.artifacts_dir)
        found = latest_artifacts(root)
        loaded = load_artifacts(found) if found is not None else None
        # with a bus, `shopkeep worker` keeps the popularity every API worker reads beside the online state
        # (Redis; an in-process online state has no worker writing beside it, so counts stay local)
        online_at = online_uri or config.storage.online_uri
        shared = open_aggregates(online_at) if config.bus.uri and online_at.startswith(
            ("redis://", "rediss://", "unix://")) else None
        return cls(store, online, config, artifacts=loaded, log_slates=log_slates, retrieval_k=retrieval_k,
                   aggregates=shared)

    # -- write path ---------------------------------------------------------------------------
    def ingest(self, raw_events: Sequence[Mapping[str, Any]]) -> IngestReport:
        """Store events (idempotent by event_id) and fold them into the hot features: the newly stored
        ones, and duplicates that a crash may have kept from the features (each record folds an event
        once, see :meth:`SessionFeatures.update`); live popularity counts only the new ones."""
        with self._write_lock:
            self._recorder.inserted, self._recorder.duplicates = [], []
            report = self._ingestor.ingest_batch(raw_events)
            inserted = set(self._recorder.inserted)
            again = set(self._recorder.duplicates) - inserted
        if inserted or again:
            events = self._events_of(raw_events, inserted | again)
            self.features.update(events, retried=again)
            fresh = [e for e in events if e.event_id in inserted]
            if fresh:
                self._bindings.sources.add_events(fresh)
                self.fit.update(fresh)
                self.visit_prior.update(fresh)
        return report

    @staticmethod
    def _events_of(raw_events: Sequence[Mapping[str, Any]], inserted: set[str]) -> list[Event]:
        out: list[Event] = []
        for raw in raw_events:
            event_id = raw.get("event_id") if isinstance(raw, Mapping) else None
            if isinstance(event_id, str) and event_id in inserted:  # an id of the wrong type was rejected
                inserted.discard(event_id)  # a repeated id in one batch counts once
                out.append(parse_event(raw))
        return out

    # -- read path ----------------------------------------------------------------------------
    def recommend(self, request: ContextRequest) -> Slate:
        """The slate for one request (a batch of one)."""
        return self.recommend_many([request])[0]

    def recommend_many(self, requests: Sequence[ContextRequest]) -> list[Slate]:
        """Slates for a batch of requests: one retrieval call for all of them."""
        self._refresh_policy()
        self.fit.catch_up()
        bindings = self._bindings  # read once: a swap during this call does not affect it
        for i, req in enumerate(requests):
            if req.user_id is None and req.anonymous_id is None:
                raise ValidationError(f"requests[{i}].anonymous_id", None,
                                      "give anonymous_id or user_id (slates are logged per shopper)")
            if isinstance(req.k, bool) or not isinstance(req.k, int) or not 1 <= req.k <= 100:
                raise ValidationError("k", req.k, "must be an integer in [1, 100]")
        profiles = self._profiles([r.user_id for r in requests if r.user_id is not None])
        contexts = [self.features.context(r, profiles.get(r.user_id) if r.user_id else None) for r in requests]
        masks = [bindings.policy.eligibility(bindings.snapshot, ctx) for ctx in contexts]
        by_surface: dict[str, list[int]] = {}
        for i, ctx in enumerate(contexts):
            by_surface.setdefault(ctx.surface, []).append(i)
        fused: list[Sequence[FusedCandidate]] = [[] for _ in contexts]
        for surface, rows in by_surface.items():
            # arrays end to end (retrieval -> ranking -> policy): objects only for the items served
            found = bindings.sources.retriever(surface).retrieve_arrays(
                [contexts[i] for i in rows], [masks[i] for i in rows], bindings.snapshot, k=self.retrieval_k)
            for i, cands in zip(rows, found, strict=True):
                fused[i] = cands
        ranked = bindings.ranker.rank_many(contexts, fused, bindings.snapshot)
        slates = [self._finish(bindings, ctx, cands, rk, mask)
                  for ctx, cands, rk, mask in zip(contexts, fused, ranked, masks, strict=True)]
        if self.slate_log is not None:
            self.slate_log.add([self._record(ctx, s) for ctx, s in zip(contexts, slates, strict=True)])
        return slates

    def _profiles(self, user_ids: list[str]) -> dict[str, Profile]:
        return self.profiles.get_many(user_ids) if user_ids else {}

    def _refresh_policy(self) -> None:
        """Pick up a policy version another worker saved (checked every ``policy_refresh_s``)."""
        now = time.monotonic()
        if now - self._policy_checked < self.policy_refresh_s:
            return
        self._policy_checked = now
        old = self._bindings
        fresh = old.policy.refreshed()
        if fresh is not old.policy:
            with self._swap_lock:
                self._bindings = replace(self._bindings, policy=fresh)

    def _ranker_for(self, artifacts: LoadedArtifacts | None) -> tuple[Ranker, dict[str, Any]]:
        """The ranker for ``artifacts`` with the configured objective, and which one it is and why."""
        from shopkeep.ranking.learned import lightgbm_available

        cfg = self.config.ranking
        objective = Objective(cfg.relevance, cfg.margin, cfg.conversion, cfg.version)
        path = artifacts.path / RANKER if artifacts is not None else None
        if not cfg.learned:
            why = "ranking.learned is off"
        elif path is None or not (path / "ranker.json").is_file():
            why = "no learned ranker in the artifacts" + (f" ({artifacts.manifest.ranker.get('reason')})"
                                                           if artifacts is not None and artifacts.manifest.ranker
                                                           else "")
        elif not lightgbm_available():
            why = "lightgbm is not installed"
        else:
            ranker = Ranker.load(path, objective)
            ranker.return_cost_fraction = cfg.return_cost_fraction
            return ranker, {"kind": "learned", "model": str(path)}
        return Ranker(objective, return_cost_fraction=cfg.return_cost_fraction), {"kind": "non-learned", "reason": why}

    def _finish(self, bindings: _Bindings, ctx: Context, cands: Sequence[FusedCandidate],
                ranked: Sequence[ScoredItem], mask: Any) -> Slate:
        chosen, trace = bindings.policy.apply(ctx, ranked, bindings.snapshot)
        snap = bindings.snapshot
        served = self.explorer.explore(ctx, chosen, ranked, mask, snap)
        served, fits = self._fit_variants(ctx, served, mask, snap)
        items = []
        for pos, (ch, prop) in enumerate(zip(served.items, served.propensities, strict=True)):
            i = snap.index[ch.item_id]
            price = ch.display_price_minor if ch.display_price_minor is not None else int(snap.price_minor[i])
            money = Money(price, snap.currency) if price >= 0 and snap.currency else None
            items.append(SlateItem(ch.item_id, round(float(ch.score), 6), money, pos, tuple(sorted(ch.sources)),
                                   prop, tuple(ch.reasons), fits.get(ch.item_id)))
        trace_id = uuid.uuid4().hex
        fused = self._fused_of(cands, {ch.item_id for ch in served.items}, snap)
        explain = self._explain(bindings, ctx, len(cands), served, fused, trace, fits) \
            if ctx.request.explain else None
        log = {"candidates": [[ch.item_id, *fused.get(ch.item_id, (0.0, len(cands))),
                               {s: [float(v[0]), int(v[1])] for s, v in sorted(ch.sources.items())}]
                              for ch in served.items],
               "explore": served.info, "ranker": bindings.ranker_info.get("kind"),
               "objective": bindings.ranker.objective.to_dict(), "policy_version": bindings.policy.version}
        return Slate(trace_id, ctx.surface, tuple(items), explain, bindings.sources.version, log)

    def _fit_variants(self, ctx: Context, served: Explored, mask: Any,
                      snap: CatalogSnapshot) -> tuple[Explored, dict[str, dict[str, Any]]]:
        """``served`` with each sized item replaced by its variant in the size the fit model suggests
        (when that variant is eligible and not shown already) and the fit note added to its reasons;
        and the advice per shown item id."""
        if not ctx.personalize or (ctx.user_id is None and ctx.anonymous_id is None):
            return served, {}
        advice = self.fit.advise_many(ctx.user_id, ctx.anonymous_id, [ch.item_id for ch in served.items])
        if not advice:
            return served, {}
        shown = {ch.item_id for ch in served.items}
        items, fits = [], {}
        for ch in served.items:
            found = advice.get(ch.item_id)
            if found is None:
                items.append(ch)
                continue
            variant = found.suggested_item_id
            j = snap.index.get(variant) if variant is not None else None
            if variant is not None and variant != ch.item_id and j is not None and bool(mask[j]) \
                    and variant not in shown:
                shown.add(variant)
                price = int(snap.price_minor[j])
                ch = replace(ch, item_id=variant, display_price_minor=price if price >= 0 else None)
            ch = replace(ch, reasons=(*ch.reasons, f"fit: {found.note}"))
            fits[ch.item_id] = {**found.to_dict(), "variant_of": found.item_id}
            items.append(ch)
        return replace(served, items=tuple(items)), fits

    @staticmethod
    def _fused_of(cands: Sequence[FusedCandidate], wanted: set[str],
                  snap: CatalogSnapshot) -> dict[str, tuple[float, int]]:
        """(fused score, fused position) of the ``wanted`` items (only those objects are built)."""
        if isinstance(cands, FusedArrays):
            want = snap.indices(sorted(wanted))
            at = np.flatnonzero(np.isin(cands.indices, want))
            ids = cands.item_ids
            return {ids[int(cands.indices[j])]: (float(cands.scores[j]), int(j)) for j in at.tolist()}
        return {c.item_id: (float(c.score), j) for j, c in enumerate(cands) if c.item_id in wanted}

    @staticmethod
    def _explain(bindings: _Bindings, ctx: Context, n_candidates: int, served: Explored,
                 fused: Mapping[str, tuple[float, int]], trace: Sequence[Mapping[str, Any]],
                 fits: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        top = sorted(ctx.affinities.items(), key=lambda kv: -kv[1])[:10]
        # the category a focused session's affinity source keeps to (retrieval/affinity.AffinitySource.mission)
        mission = next((m for src in bindings.sources.retriever(ctx.surface).sources
                        if isinstance(src, AffinitySource) and (m := src.mission(ctx)) is not None), None)
        return {
            "artifact_version": bindings.sources.version, "policy_version": bindings.policy.version,
            "candidates": n_candidates, "affinities": {k: round(v, 4) for k, v in top},
            "recent_items": list(ctx.recent_items[-10:]), "mission": mission,
            "objective": bindings.ranker.objective.to_dict(), "ranker": dict(bindings.ranker_info),
            "exploration": dict(served.info),
            "items": [{"item_id": ch.item_id, "final_score": ch.score,
                       "fused_score": fused[ch.item_id][0] if ch.item_id in fused else None,
                       "propensity": p,
                       "sources": {s: {"score": sc, "rank": rk} for s, (sc, rk) in sorted(ch.sources.items())},
                       "reasons": list(ch.reasons), "fit": fits.get(ch.item_id)}
                      for ch, p in zip(served.items, served.propensities, strict=True)],
            "rules": list(trace),
        }

    def _record(self, ctx: Context, slate: Slate) -> SlateRecord:
        top = sorted(ctx.affinities.items(), key=lambda kv: -kv[1])[:30]
        features = {"affinities": {k: round(v, 5) for k, v in top}, "recent_items": list(ctx.recent_items[-50:]),
                    "cart_items": list(ctx.cart_items), "item_id": ctx.request.item_id, "k": ctx.request.k,
                    "store": ctx.store, "region": ctx.region, "scores": [it.score for it in slate.items],
                    "artifact_version": slate.version, "now_ms": ctx.now_ms, **dict(slate.served or {})}
        return SlateRecord(slate.trace_id, slate.surface, ctx.user_id, ctx.anonymous_id, ctx.session_id,
                           tuple(it.item_id for it in slate.items), tuple(it.position for it in slate.items),
                           tuple("+".join(it.sources) for it in slate.items),
                           tuple(it.propensity for it in slate.items), features, datetime.now(UTC))

    # -- catalog ------------------------------------------------------------------------------
    def upsert_items(self, items: Sequence[Item]) -> tuple[str, ...]:
        """Store items and make them recommendable at once (new snapshot, content vectors indexed)."""
        if not items:
            return ()
        with self._swap_lock:
            result = self.catalog.upsert_many(items)
            changed = [it for it in items if it.item_id in set(result.inserted) | set(result.updated)]
            if changed:
                self.fit.add_items(changed)
                old = self._bindings
                snapshot = old.snapshot.with_items(changed)
                self._bindings = replace(old, sources=old.sources.with_items(changed, snapshot))
        return tuple(it.item_id for it in changed)

    def put_item(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Validate one wire-format item, store it, answer its stored wire form."""
        item = parse_item(raw, default_currency=self._bindings.snapshot.currency or "USD")
        self.upsert_items([item])
        return item_to_dict(item)

    def get_item(self, item_id: str) -> dict[str, Any]:
        """The wire form of a stored item (NotFoundError when unknown)."""
        return item_to_dict(self.catalog.get(item_id))

    def read_view(self) -> tuple[CatalogSnapshot, PolicyStage]:
        """The catalog snapshot and policy stage in force, read together (search reads through this)."""
        self._refresh_policy()
        b = self._bindings
        return b.snapshot, b.policy

    def prior_weights(self, request: ContextRequest) -> tuple[CatalogSnapshot, npt.NDArray[np.float64]]:
        """Where the shopper's next item probably is, before any answer (preference elicitation's prior):
        the visit-context prior when the request's context is known, else popularity; 0 for items the
        policy makes ineligible for this shopper. Returns the snapshot the weights index."""
        self._refresh_policy()
        b = self._bindings
        profile = self._profiles([request.user_id]).get(request.user_id) if request.user_id else None
        ctx = self.features.context(request, profile)
        snap = b.snapshot
        visit = request.visit()
        if visit and self.visit_prior.knows(visit):
            to_snap = np.asarray(snap.indices(list(self.visit_prior.item_ids)), dtype=np.int64)
            row = np.zeros(snap.n)
            ok = to_snap >= 0
            row[to_snap[ok]] = self.visit_prior.scores([visit])[0][ok]
        else:
            row = np.asarray(b.sources.popular.scores(), dtype=np.float64)
        mask = np.asarray(b.policy.eligibility(snap, ctx), dtype=bool)
        return snap, np.where(mask, row + 1e-9, 0.0)  # unseen eligible items keep a little weight

    # -- policy -------------------------------------------------------------------------------
    def policy_dict(self) -> dict[str, Any]:
        """The policy in force, in its wire form (with its version)."""
        return self._bindings.policy.to_dict()

    def set_policy(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and install a new policy (persisted in the store); answers it with its new version."""
        with self._swap_lock:
            old = self._bindings
            stage = old.policy.replaced(raw)
            self._bindings = replace(old, policy=stage)
        return stage.to_dict()

    # -- models -------------------------------------------------------------------------------
    def load_artifacts(self, path: str | Path) -> str | None:
        """Hot-swap to the models at ``path`` (a version directory or an artifacts root); returns the version."""
        loaded = load_artifacts(path)
        popularity = read_popularity(loaded.path)
        ranker_info = None if self._fixed_ranker else self._ranker_for(loaded)
        with self._swap_lock:
            old = self._bindings
            sources = build_sources(old.snapshot, loaded, popularity, shared=self.aggregates,
                                    visit_prior=self.visit_prior)
            self._bindings = replace(old, sources=sources) if ranker_info is None else replace(
                old, sources=sources, ranker=ranker_info[0], ranker_info=ranker_info[1])
        log.info("engine now serves artifacts %s (%s ranker)", loaded.version,
                 self._bindings.ranker_info.get("kind"))
        return loaded.version

    def watch_artifacts(self, root: str | Path, *, interval_s: float = 5.0) -> threading.Thread:
        """Poll ``root``'s LATEST pointer every ``interval_s`` and hot-swap when it names a new version."""
        def run() -> None:
            while not self._closed.wait(interval_s):
                found = latest_artifacts(root)
                if found is not None and read_manifest(found).version != self.version:
                    try:
                        self.load_artifacts(found)
                    except ShopkeepError as exc:
                        log.error("could not load artifacts %s: %s", found, exc)

        thread = threading.Thread(target=run, name="shopkeep-artifact-watch", daemon=True)
        thread.start()
        return thread

    @property
    def version(self) -> str | None:
        """The artifact version in use."""
        return self._bindings.sources.version

    # -- lifecycle ----------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """Liveness/readiness: catalog size, artifact and policy versions, storage URIs (no secrets)."""
        b = self._bindings
        return {"status": "ok", "items": int(np.count_nonzero(b.snapshot.active)), "artifacts": b.sources.version,
                "policy_version": b.policy.version, "sources": sorted(b.sources.sources), "worker_pid": os.getpid(),
                "ranker": b.ranker_info.get("kind"), "popularity": "shared" if self.aggregates else "local",
                "started_at": self.started_at.isoformat().replace("+00:00", "Z")}

    def flush(self) -> None:
        """Write pending served slates now."""
        if self.slate_log is not None:
            self.slate_log.flush()

    def close(self) -> None:
        """Flush the slate log and release the store and the online state."""
        self._closed.set()
        if self.slate_log is not None:
            self.slate_log.close()
        self.store.close()
        self.online.close()
        if self.aggregates is not None:
            self.aggregates.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

