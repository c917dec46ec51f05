"""The check a Cloudera-style model build runs: load the model once, as a replica would.

``python -m modeldeck.compat.cmlapi_build --model-uri models:/name/3 --tracking-uri ...`` (or
``--file /path/predict.py --function predict``) runs in its own process, so that a model that
crashes, hangs or pollutes the interpreter while loading never touches the platform. Its last
line of output is ``RESULT_PREFIX`` followed by ``{"ok": bool, "message": str}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

RESULT_PREFIX = "modeldeck-build-result: "


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modeldeck-build-check")
    parser.add_argument("--model-uri", help="models:/name/version")
    parser.add_argument("--tracking-uri", help="MLflow tracking and registry URI")
    parser.add_argument("--file", help="a Python file holding the predict function")
    parser.add_argument("--function", default="predict", help="the predict function's name")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    what = args.file or args.model_uri
    try:
        if args.file:
            from modeldeck.replica.function import PythonFunction

            PythonFunction(args.file, args.function).load()
        else:
            from modeldeck.replica.model import MlflowModel

            MlflowModel(args.model_uri, args.tracking_uri).load()
    except BaseException as exc:  # anything the model's code raises, even SystemExit
        message = f"{type(exc).__name__}: {exc}".strip()
        print(RESULT_PREFIX + json.dumps({"ok": False, "message": message}), flush=True)
        return 1
    seconds = time.perf_counter() - started
    message = f"loaded {what} in {seconds:.1f} s"
    print(RESULT_PREFIX + json.dumps({"ok": True, "message": message}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
