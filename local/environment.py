"""`python -m local.environment FD SPEC_JSON --owner=PID`: one execution environment (see environments.py)."""

from __future__ import annotations

import json
import sys

from local.environments import _serve

if __name__ == "__main__":
    sys.exit(_serve(int(sys.argv[1]), json.loads(sys.argv[2])))
