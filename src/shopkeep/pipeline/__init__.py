"""shopkeep.pipeline: the composition root (write-path ingestion; the engine wires the stages)."""

from shopkeep.pipeline.ingest import Ingestor, IngestReport

__all__ = ["IngestReport", "Ingestor"]
