"""The name a training command's usage line shows: what the user typed to run it."""
from __future__ import annotations

import sys
from pathlib import Path


def prog(module: str) -> str:
    """`captioner-<module>` when run as that console script (pip install), else `python -m`
    and the module as this package is named: training.<module> in a checkout,
    captioner.training.<module> installed."""
    script = f"captioner-{module.replace('_', '-')}"
    if Path(sys.argv[0]).stem == script:
        return script
    return f"python -m {__package__}.{module}"
