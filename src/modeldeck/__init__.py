"""modeldeck: deploy registered MLflow models as REST endpoints and watch them in production."""

from __future__ import annotations

__version__ = "0.1.0"

from modeldeck.client import ApiError, Client
from modeldeck.config import Settings
from modeldeck.metrics import model

__all__ = ["ApiError", "Client", "Settings", "__version__", "model"]
