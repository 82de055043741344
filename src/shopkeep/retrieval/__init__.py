"""shopkeep.retrieval: named candidate sources over a catalog snapshot, fusion and the Retriever."""

from shopkeep.retrieval.affinity import AffinitySource
from shopkeep.retrieval.base import Candidate, CandidateSource, FusedCandidate, Mask
from shopkeep.retrieval.binding import ModelBinding, top_k
from shopkeep.retrieval.complements import AssociationRules, ComplementsSource, baskets_from_events
from shopkeep.retrieval.fusion import SURFACE_WEIGHTS, ArraySource, FusedArrays, Retriever, WeightedSource, fuse
from shopkeep.retrieval.sources import CovisitSource, PopularSource, SequentialSource
from shopkeep.retrieval.vectors import ContentSource, TwoTowerSource

__all__ = [
    "SURFACE_WEIGHTS",
    "AffinitySource",
    "ArraySource",
    "AssociationRules",
    "Candidate",
    "CandidateSource",
    "ComplementsSource",
    "ContentSource",
    "CovisitSource",
    "FusedArrays",
    "FusedCandidate",
    "Mask",
    "ModelBinding",
    "PopularSource",
    "Retriever",
    "SequentialSource",
    "TwoTowerSource",
    "WeightedSource",
    "baskets_from_events",
    "fuse",
    "top_k",
]
