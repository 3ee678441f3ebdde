"""What every bench/plot_*.py shares: the command line (JSON in, optional output stem) and writing
a figure as PNG and SVG. Imported by the scripts beside it (python puts their folder on sys.path)."""
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on build machines
import matplotlib.pyplot as plt  # noqa: E402,F401  (re-exported for the scripts)


def load_args(usage: str, default_suffix: str = ""):
    """(doc, stem) from `SCRIPT IN.json [OUT_STEM]`, or None after printing the usage."""
    if len(sys.argv) < 2:
        print(usage)
        return None
    src = Path(sys.argv[1])
    stem = sys.argv[2] if len(sys.argv) > 2 else str(src.with_suffix("")) + default_suffix
    return json.loads(src.read_text()), stem


def save(fig, stem) -> None:
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(f"{stem}.{ext}", dpi=110)
        print(f"wrote {stem}.{ext}")
    plt.close(fig)
