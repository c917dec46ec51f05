"""A deployment of custom predict code: a Python file and the name of a function in it.

The function receives the request's JSON object (Cloudera ML's ``args``) and returns anything
JSON can carry. Decorated with ``@modeldeck.model(metrics=True)`` it tracks its own metrics and
returns ``{"prediction", "uuid", "model_deployment_crn"}``, which the replica answers as is.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from modeldeck.errors import ConfigurationError


class PythonFunction:
    ready: bool

    def __init__(self, path: str, function: str) -> None:
        self.path = Path(path)
        self.function = function
        self.ready = False
        self._fn: Any = None

    def load(self) -> None:
        if not self.path.is_file() or self.path.suffix != ".py":
            raise ConfigurationError(f"{self.path} is not a Python file")
        module_name = f"modeldeck_user_{self.path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, self.path)
        if spec is None or spec.loader is None:
            raise ConfigurationError(f"cannot import {self.path}")
        sys.path.insert(0, str(self.path.parent))  # let the file import its neighbours
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        fn = getattr(module, self.function, None)
        if not callable(fn):
            raise ConfigurationError(f"{self.path} has no function {self.function!r}")
        self._fn = fn
        self.ready = True

    @property
    def tracks_itself(self) -> bool:
        return bool(getattr(self._fn, "__modeldeck_model__", False))

    def __call__(self, args: Any) -> Any:
        return self._fn(args)

    def unload(self) -> None:
        self._fn = None
        self.ready = False
