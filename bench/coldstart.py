"""Every function's cold-start import time against `import boto3`, in one run (goal <= 1.3x each).

Each sample is a fresh interpreter importing the handler module the way Lambda does (the
function's CodeUri and the layer on sys.path, Lambda's environment with the template's defaults:
X-Ray SDK off), alternating with fresh interpreters that only `import boto3`; the figures are the
medians. Interpreter start-up is excluded from both. Run: .venv/bin/python bench/coldstart.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from estimate import BOTO3_IMPORT, ROOT, import_seconds

sys.path[:0] = [str(ROOT), str(ROOT / "shared")]
from local.template import resources  # noqa: E402

GOAL = 1.3

# function -> (CodeUri, handler module), read from template.yaml (every function, as deployed)
FUNCTIONS = {
    name.removesuffix("Function").lower(): (str(f["Properties"]["CodeUri"]).rstrip("/"), str(f["Properties"]["Handler"]).rsplit(".", 1)[0])
    for name, f in resources("AWS::Serverless::Function").items()
}


def handler_import(module: str) -> str:
    return f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    paths = {name: [ROOT / code_uri, ROOT / "shared"] for name, (code_uri, _) in FUNCTIONS.items()}
    for name, (_, module) in FUNCTIONS.items():
        import_seconds(handler_import(module), paths[name])  # compile the .pyc files once, as a deployment does
    samples: dict[str, list[float]] = {name: [] for name in FUNCTIONS}
    boto3_samples: list[float] = []
    for _ in range(runs):
        boto3_samples.append(import_seconds(BOTO3_IMPORT, []))
        for name, (_, module) in FUNCTIONS.items():
            samples[name].append(import_seconds(handler_import(module), paths[name]))
    boto3_ms = statistics.median(boto3_samples) * 1000
    print(f"cold start ({runs} fresh interpreters each, medians; goal <= {GOAL}x import boto3)")
    print(f"  {'import boto3':<22} {boto3_ms:7.1f} ms")
    worst = 0.0
    for name in FUNCTIONS:
        ms = statistics.median(samples[name]) * 1000
        ratio = ms / boto3_ms
        worst = max(worst, ratio)
        print(f"  {name + ' handler':<22} {ms:7.1f} ms  {ratio:5.2f}x  {'ok' if ratio <= GOAL else 'OVER'}")
    return 0 if worst <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
