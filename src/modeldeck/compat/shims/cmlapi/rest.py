"""``cmlapi.rest`` on modeldeck: where scripts import ``ApiException`` from."""

from modeldeck.compat.cmlapi import ApiException

__all__ = ["ApiException"]
