"""The web dashboard: static pages at ``/`` that draw the control plane's ``/api/v1``."""
