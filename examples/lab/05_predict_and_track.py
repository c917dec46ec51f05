"""Lab 3b, model metrics: predictions, then their ground truth later, joined by UUID.

Sends each row of the hold-out set (step 01) to the endpoint with ``Client.predict``; every
answer carries the prediction's UUID, and the platform has already recorded its input and
output. Then, as if the labels had arrived later, attaches each row's true class with
``modeldeck.metrics.track_delayed_metrics({"actual_result": ...}, uuid)`` (Cloudera ML's call),
and reads the records back to check the join.

    python examples/lab/05_predict_and_track.py
"""

from __future__ import annotations

import argparse
import json

import lab
import pandas as pd

from modeldeck import metrics


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    state = lab.load_state("deployment", "access_key")
    name = state["deployment"]
    holdout = pd.read_csv(lab.lab_dir() / "holdout.csv")

    with lab.client() as client:
        lab.heading(f"{len(holdout)} predictions from the hold-out set")
        start = lab.now_ms()
        sent: list[tuple[str, int]] = []
        for _, row in holdout.iterrows():
            record = {f: float(row[f]) for f in lab.FEATURES}
            answer = client.predict(name, {"inputs": [record]}, access_key=state["access_key"])
            sent.append((str(answer.uuid), int(row["target"])))
        print(f"{len(sent)} answered; first uuid {sent[0][0]}")

        lab.heading("ground truth, later, by UUID")
        # modeldeck.metrics goes through the REST API because MODELDECK_URL is set.
        for uuid, label in sent:
            metrics.track_delayed_metrics({lab.LABEL: label}, uuid)
        end = lab.now_ms() + 1
        print(f"attached {lab.LABEL!r} to {len(sent)} predictions")

        lab.heading("read back")
        records = client.read_metrics(name, uuids=[u for u, _ in sent])["metrics"]
    print("one record, in Cloudera ML's read_metrics shape:")
    print(json.dumps(records[0], indent=2))
    labelled = [r for r in records if lab.LABEL in r["metrics"]]
    correct = sum(r["metrics"]["output"] == r["metrics"][lab.LABEL] for r in labelled)
    accuracy = correct / len(labelled)
    print(f"{len(records)} records, {len(labelled)} with ground truth; accuracy {accuracy:.4f}")
    lab.save_state(
        windows={**lab.load_state().get("windows", {}), "holdout": [start, end]},
        holdout_accuracy=accuracy,
    )


if __name__ == "__main__":
    main()
