"""``cml.models_v1`` on modeldeck."""

from modeldeck.compat.cml import call_model, cml_model

__all__ = ["call_model", "cml_model"]
