"""Registry tables (SQLAlchemy 2.0 typed ORM), one per module. Only the service layer uses them."""

from registry.models.alias import Alias
from registry.models.alias_event import AliasEvent
from registry.models.api_token import ApiToken, UsageCounter
from registry.models.artifact import Artifact
from registry.models.base import Base, utcnow
from registry.models.consumer import Consumer
from registry.models.dataset import Dataset
from registry.models.generation import Generation
from registry.models.generation_dataset import GenerationDataset
from registry.models.lineage_edge import LineageEdge
from registry.models.metric import Metric
from registry.models.status_event import StatusEvent

__all__ = [
    "Alias",
    "AliasEvent",
    "ApiToken",
    "Artifact",
    "Base",
    "Consumer",
    "Dataset",
    "Generation",
    "GenerationDataset",
    "LineageEdge",
    "Metric",
    "StatusEvent",
    "UsageCounter",
    "utcnow",
]
