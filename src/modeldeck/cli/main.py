"""The ``modeldeck`` command's entry point (``modeldeck = "modeldeck.cli.main:main"``, and
``python -m modeldeck.cli.main``)."""

from __future__ import annotations

from modeldeck.cli.deployments import ClientSettings, main

__all__ = ["ClientSettings", "main"]


if __name__ == "__main__":
    main()
