"""Lab 3a, the ops simulation: synthetic traffic and delayed ground truth with
``modeldeck.simulate``.

Two stretches against the deployment:

1. **clean**: rows drawn from the training (reference) data, each labelled with its true class
   right after the answer;
2. **drifted**: the same kind of rows with ``petal_length`` shifted by 2 cm and ``sepal_width``
   spread twice as wide (data drift), labels moved to the next class (concept drift: the answer
   the model gives is no longer right), each sent ``--label-delay`` seconds after its answer.

The time window of each stretch is kept in the state file for steps 06 and 07.

    python examples/lab/04_simulate.py [--requests 200] [--rate 50] [--label-delay 2]
"""

from __future__ import annotations

import argparse
import time

import lab

from modeldeck.simulate import FeatureDrift, Result, simulate


def summary(title: str, result: Result) -> None:
    lat = result.latency_ms
    print(
        f"{title}: sent {result.sent}, ok {result.ok}, failed {result.failed}, "
        f"{result.rps:.1f} requests/s, latency p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms, "
        f"p99 {lat['p99']:.1f} ms; {result.labels_sent} labels sent"
        + (f" ({result.labels_failed} failed)" if result.labels_failed else "")
    )
    for error in result.errors:
        print(f"  error: {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per stretch")
    parser.add_argument(
        "--rate", type=float, default=50.0, help="requests per second (0: as fast as it answers)"
    )
    parser.add_argument("--label-delay", type=float, default=2.0, help="seconds (drifted stretch)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    state = lab.load_state("deployment", "access_key")

    with lab.client() as client:
        lab.heading(f"clean traffic: {args.requests} training-like rows with their true labels")
        start = lab.now_ms()
        clean = simulate(
            client,
            lab.DEPLOYMENT,
            requests=args.requests,
            rate=args.rate or None,
            seed=args.seed,
            source="reference",  # rows of the training data, drawn with replacement
            labels="reference",  # each row's true class, sent as `actual_result`
            access_key=state["access_key"],
        )
        clean_window = [start, lab.now_ms() + 1]
        summary("clean", clean)
        time.sleep(0.01)  # the windows must not share a millisecond

        lab.heading(
            f"drifted traffic: petal_length +2, sepal_width x2, labels flipped, "
            f"ground truth {args.label_delay:g} s late"
        )
        start = lab.now_ms()
        drifted = simulate(
            client,
            lab.DEPLOYMENT,
            requests=args.requests,
            rate=args.rate or None,
            seed=args.seed + 1,
            source="reference",
            labels="reference",
            drifts=[
                FeatureDrift("petal_length", shift=2.0),
                FeatureDrift("sepal_width", scale=2.0),
            ],
            flip_after=0,
            label_delay=args.label_delay,
            access_key=state["access_key"],
        )
        drifted_window = [start, lab.now_ms() + 1]
        summary("drifted", drifted)

    failed = clean.failed + drifted.failed + clean.labels_failed + drifted.labels_failed
    lab.save_state(
        windows={
            **lab.load_state().get("windows", {}),
            "clean": clean_window,
            "drifted": drifted_window,
        }
    )
    print(f"\nwindows saved in {lab.state_path()}")
    if failed:
        raise SystemExit(f"{failed} requests or labels failed")


if __name__ == "__main__":
    main()
