"""Imported once by the replica fork server (``MODELDECK_REPLICA_PRELOAD``): work that every
MLflow replica would otherwise repeat while loading its model, done before the fork.

* the MLflow tracking and registry stores' SQLAlchemy modules (imported on first use);
* MLflow's map of installed distributions, which it builds (scanning every installed package's
  metadata, about a second) to compare a model's logged requirements with what is installed.

Nothing here is needed for correctness: a replica forked without it does the same work itself.
"""

from __future__ import annotations

import contextlib
import importlib

for _module in (
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
):
    with contextlib.suppress(Exception):  # an MLflow without them: replicas import what they use
        importlib.import_module(_module)

with contextlib.suppress(Exception):  # a private helper of MLflow's: warm it if it is there
    from mlflow.utils import requirements_utils

    requirements_utils._init_packages_to_modules_map()  # type: ignore[no-untyped-call]
