"""Files for the ecosystem's monitoring tools, shipped with the package.

``grafana-dashboard.json``: a Grafana dashboard over modeldeck's ``/metrics`` (import it, or
provision it from the file). ``prometheus-rules.yml``: Prometheus alerting rules for the usual
signals. ``modeldeck grafana dashboard`` and ``modeldeck prometheus rules`` print them;
docs/grafana-prometheus.md says how to use them.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
GRAFANA_DASHBOARD = HERE / "grafana-dashboard.json"
PROMETHEUS_RULES = HERE / "prometheus-rules.yml"
