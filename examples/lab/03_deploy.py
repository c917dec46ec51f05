"""Lab 2b, deployment: deploy the registered version through the API and wait until it runs.

Creates deployment ``$LAB_DEPLOYMENT`` (default ``iris``) of the version step 02 registered, with
``--replicas`` replica processes, waits until every replica answers its health check, and calls
the endpoint once. The access key is shown only once by the platform: it is kept in
``$LAB_DIR/state.json`` for the next steps. Run again, it reuses a deployment that already
serves that version (with a fresh access key) and replaces one that serves another.

    python examples/lab/03_deploy.py [--replicas 2]
"""

from __future__ import annotations

import argparse

import lab
import pandas as pd

from modeldeck import Client
from modeldeck.client import ApiError
from modeldeck.views import DeploymentView


def existing(client: Client, name: str) -> DeploymentView | None:
    try:
        return client.deployment(name)
    except ApiError as exc:
        if exc.status_code == 404:
            return None
        raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=2)
    args = parser.parse_args()
    state = lab.load_state("model", "version")
    name, version = lab.DEPLOYMENT, state["version"]

    with lab.client() as client:
        current = existing(client, name)
        if current and current.model == state["model"] and current.version == version:
            lab.heading(f"{name} already serves {state['model']} v{version}")
            if current.desired_state != "running":
                client.start(name)
            access_key = client.rotate_access_key(name)
            print("rotated its access key (the platform keeps only a hash of the old one)")
        else:
            if current:
                lab.heading(f"deleting {name} (it serves {current.model} v{current.version})")
                client.delete(name)
            lab.heading(f"deploying {state['model']} v{version} as {name}")
            created = client.deploy(name, state["model"], version=version, replicas=args.replicas)
            access_key = created.access_key
            print(f"created {created.crn}, status {created.status}")
        # Shown only once: keep it before anything else can go wrong.
        lab.save_state(deployment=name, access_key=access_key)

        seen: set[tuple[str, int]] = set()

        def progress(d: DeploymentView) -> None:
            step = (d.status, d.ready_replicas)
            if step not in seen:
                seen.add(step)
                print(f"  {d.status}: {d.ready_replicas}/{d.replicas} replicas ready")

        deployment = client.wait(name, timeout=300, on_progress=progress)
        print(f"endpoint {deployment.endpoint_url}")

        lab.heading("a first prediction")
        holdout = pd.read_csv(lab.lab_dir() / "holdout.csv")
        record = holdout.iloc[0][lab.FEATURES].astype(float).to_dict()
        answer = client.predict(name, {"inputs": [record]}, access_key=access_key)
        print(f"input {record}")
        print(
            f"prediction {answer.prediction} (true class {int(holdout.iloc[0]['target'])}), "
            f"uuid {answer.uuid}"
        )

    lab.save_state(
        endpoint_url=deployment["endpoint_url"],
        deployment_crn=deployment["crn"],
    )
    print(f"\naccess key saved in {lab.state_path()}; try:")
    print(
        f"curl -s {deployment['endpoint_url']} -H 'Authorization: Bearer {access_key}' "
        "-d '{\"inputs\": [[5.1, 3.5, 1.4, 0.2]]}'"
    )


if __name__ == "__main__":
    main()
