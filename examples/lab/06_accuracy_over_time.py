"""Lab 3c, accuracy over time: read the metrics back into pandas, and ask the platform.

Reads every prediction of the lab (steps 04 and 05) with ``modeldeck.metrics.read_metrics_df``
(one row per prediction, a column per metric), joins output and ground truth, and computes the
accuracy per time window and per stretch. Each window's accuracy is tracked back as an
aggregate metric (``track_aggregate_metrics``). Beside them, the same numbers from the
platform's performance report (``Client.performance``: computed in the store by SQL, with the
estimated accuracy next to the realised one); the two must agree.

    python examples/lab/06_accuracy_over_time.py [--step SECONDS]
"""

from __future__ import annotations

import argparse
import math

import lab
import pandas as pd

from modeldeck import metrics


def fmt(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--step", type=int, help="seconds per window (default: about 6 windows)")
    args = parser.parse_args()
    state = lab.load_state("deployment", "windows")
    name = state["deployment"]
    start = min(w[0] for w in state["windows"].values())
    end = lab.now_ms() + 1
    step = args.step or max(1, math.ceil((end - start) / 6000))

    lab.heading("read_metrics -> pandas")
    frame = metrics.read_metrics_df(deployment=name, start_timestamp_ms=start, end_timestamp_ms=end)
    if frame.empty:
        raise SystemExit(f"no predictions of {name} since the lab started: run steps 04 and 05")
    frame = frame[frame["predictionUuid"] != ""]  # aggregate records (window-level) come last
    labelled = frame.dropna(subset=[lab.LABEL]).copy()
    print(f"{len(frame)} predictions since the lab started, {len(labelled)} with ground truth")
    labelled["correct"] = labelled["output"] == labelled[lab.LABEL]

    lab.heading("accuracy per stretch")
    for stretch, (w_start, w_end) in state["windows"].items():
        part = labelled[labelled["endTimeStampMs"].between(w_start, w_end)]
        print(f"{stretch:<8} {len(part):>4} labelled   accuracy {fmt(part['correct'].mean())}")

    lab.heading(f"accuracy per {step} s window, pandas and the platform")
    # The platform's windows start at `start` and hold predictions by their end time.
    labelled["window"] = (labelled["endTimeStampMs"] - start) // (step * 1000)
    ours = labelled.groupby("window")["correct"].agg(["mean", "size"])
    with lab.client() as client:
        report = client.performance(name, start_ms=start, end_ms=end, step_seconds=step)
    print(f"{'window (UTC)':<21}{'labelled':>9}{'pandas':>9}{'modeldeck':>11}{'estimated':>11}")
    mismatches = 0
    for window in report.windows:
        index = (window["start"] - start) // (step * 1000)
        realised = (window["realised"] or {}).get("accuracy")
        estimated = (window["estimated"] or {}).get("accuracy")
        mine = ours["mean"].get(index)
        if window["labelled"] and (mine is None or abs(mine - realised) > 1e-9):
            mismatches += 1
        when = pd.Timestamp(window["start"], unit="ms").strftime("%Y-%m-%d %H:%M:%S")
        print(
            f"{when:<21}{window['labelled']:>9}{fmt(mine):>9}{fmt(realised):>11}"
            f"{fmt(estimated):>11}"
        )
        if window["labelled"] and mine is not None:
            metrics.track_aggregate_metrics(
                {"accuracy": float(mine), "labelled": int(ours["size"][index])},
                window["start"],
                window["end"],
                deployment=name,
            )
    print(f"tracked each window's accuracy as an aggregate metric of {name}")
    if mismatches:
        raise SystemExit(f"{mismatches} windows differ between pandas and the platform")
    print("pandas and the platform agree on every window")


if __name__ == "__main__":
    main()
