"""Run code written for Cloudera ML's Python APIs against modeldeck.

``modeldeck.compat.cml`` implements ``cml.metrics_v1``, ``cml.models_v1`` and the ``cdsw``
functions on top of :mod:`modeldeck.metrics` and the ``/model`` endpoint;
``modeldeck.compat.cmlapi`` is the ``cmlapi`` client (models, builds and deployments through the
platform's ``/api/v2``). Scripts import them under Cloudera's names once the shim directory is
on the import path, which is an explicit opt-in and never shadows a real installation:

* ``export PYTHONPATH="$(modeldeck compat path)"`` before running the script, or
* ``import modeldeck.compat; modeldeck.compat.install()`` at the top of a notebook.

Connection settings come from the environment: ``MODELDECK_URL`` and ``MODELDECK_API_KEY``
(control plane), and for ``call_model`` the platform's URL again. Where a script builds its URL
from ``CDSW_DOMAIN`` (``https://<domain>``), ``MODELDECK_URL`` wins, so a plain ``http://``
platform is reached without editing the script.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SHIMS = Path(__file__).parent / "shims"
MODULES = ("cdsw", "cml", "cmlapi")


def path() -> str:
    """The directory holding the ``cdsw``, ``cml`` and ``cmlapi`` shim packages."""
    return str(SHIMS)


def real_installations() -> list[str]:
    """Which of Cloudera's modules are importable from somewhere other than the shims."""
    return [
        name
        for name in MODULES
        if (spec := importlib.util.find_spec(name)) is not None
        and not str(spec.origin or "").startswith(str(SHIMS))
    ]


def install() -> None:
    """Put the shims on ``sys.path``; refuses when a real ``cdsw``, ``cml`` or ``cmlapi`` is
    importable."""
    if str(SHIMS) in sys.path:
        return
    real = real_installations()
    if real:
        raise ImportError(
            f"a real {', '.join(real)} is installed; modeldeck's compatibility modules would "
            "shadow it. Use them in an environment without it."
        )
    sys.path.insert(0, str(SHIMS))
