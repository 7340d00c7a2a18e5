"""Makes the repository's ``benchmarks`` package importable in these tests, whichever way pytest is started
(``pytest`` does not put the repository root on ``sys.path``; ``python -m pytest`` does)."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
