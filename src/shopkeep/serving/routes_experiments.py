"""``GET /v1/experiments/{experiment_id}/report``: an A/B experiment's report (scope ``experiments``).

The experiments live in the engine's Store (:class:`~shopkeep.evaluation.experiments.ExperimentBook`:
definition, first exposures, per-unit outcomes). The report holds the exposures per arm, the
sample-ratio-mismatch check, each metric per arm with a confidence interval and its difference from
the control (plus CUPED rows when every unit has a pre-period covariate), and guardrail verdicts.
An unknown experiment answers 404 in the error envelope.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from shopkeep.evaluation.experiments import ExperimentBook
from shopkeep.serving.deps import EngineDep, require_scope

__all__ = ["experiments_router"]

ExperimentPath = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[^/]+$")]


def experiments_router() -> APIRouter:
    """The experiments routes."""
    router = APIRouter(tags=["experiments"])

    @router.get("/v1/experiments/{experiment_id}/report", dependencies=[Depends(require_scope("experiments"))],
                summary="An experiment's report: exposures, SRM check, metrics per arm with CIs, guardrails")
    def report(experiment_id: ExperimentPath, engine: EngineDep,
               alpha: Annotated[float, Query(gt=0.0, lt=0.5)] = 0.05) -> dict[str, Any]:
        return ExperimentBook(engine.store).report(experiment_id, alpha=alpha)

    return router
