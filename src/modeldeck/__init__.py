"""modeldeck: deploy registered MLflow models as REST endpoints and watch them in production."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
