"""Lab 3d, a drift check: the lab's traffic against the model's training data.

Asks the platform for a drift report (``Client.drift``) over each stretch of step 04: the clean
traffic should look like the training data, the drifted one should not (``petal_length`` and
``sepal_width`` were changed, and the predictions move with them). The reference data was
logged with the training run (step 01) and is fetched by the platform on its own. The reports
are written to ``$LAB_DIR/drift.json``.

    python examples/lab/07_drift.py
"""

from __future__ import annotations

import argparse
import json

import lab


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    state = lab.load_state("deployment", "windows")
    name = state["deployment"]
    reports = {}
    with lab.client() as client:
        for stretch in ("clean", "drifted"):
            start, end = state["windows"][stretch]
            reports[stretch] = client.drift(name, start_ms=start, end_ms=end)

    first = reports["clean"]
    lab.heading(f"reference: {first.reference['source']}")
    for stretch, report in reports.items():
        lab.heading(stretch)
        print(f"{'column':<14}{'method':<14}{'statistic':>12}{'threshold':>11}  verdict")
        rows = list(report.columns)
        if report.prediction:
            rows.append({**report.prediction, "column": "(prediction)"})
        for c in rows:
            statistic = "-" if c["statistic"] is None else f"{c['statistic']:.4g}"
            print(
                f"{c['column']:<14}{c['method']:<14}{statistic:>12}{c['threshold']:>11.3g}"
                f"  {'drifted' if c['drifted'] else 'ok'}"
            )
        dataset = report.dataset
        verdict = "DRIFTED" if dataset["drifted"] else "no drift"
        print(
            f"dataset: {verdict} ({len(dataset['drifted_columns'])} of {dataset['columns']} "
            f"columns: {', '.join(dataset['drifted_columns']) or 'none'})"
        )
    path = lab.lab_dir() / "drift.json"
    path.write_text(
        json.dumps({k: r.model_dump(mode="json") for k, r in reports.items()}, indent=2)
    )
    print(f"\nreports written to {path}")


if __name__ == "__main__":
    main()
