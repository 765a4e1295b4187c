"""What every example shares: its command line (--backend, --quick, --out), one-line hints for
missing optional packages, a progress bar, the summary table it prints, and readable figures
(at least MIN_DPI dots per inch and MIN_FONT-point text, checked when a figure is saved)."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any, Iterable, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
INSTALL_HINT = "pip install 'symgraph[examples]'"
MIN_DPI = 100
MIN_FONT = 9.0  # points: tick labels, legends and annotations included
STYLE = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "xtick.labelsize": 9,
         "ytick.labelsize": 9, "legend.fontsize": 9}


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the flags every example takes."""
    from symgraph.backends import BACKENDS
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--backend", default="numpy", choices=BACKENDS,
                   help=f"where the compiled functions run (one of: {', '.join(BACKENDS)})")
    p.add_argument("--quick", action="store_true", help="a few iterations and no animation (for smoke tests)")
    p.add_argument("--out", default=os.path.join(HERE, "out"), help="folder for the pictures (default examples/out)")
    return p


def parse(p: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``, check that the chosen backend can compile here, and make the output folder."""
    args = p.parse_args(argv)
    check_backend(args.backend)
    os.makedirs(args.out, exist_ok=True)
    return args


def check_backend(name: str) -> None:
    """Exit with one line if ``name`` cannot compile a trivial function on this machine."""
    import numpy as np
    import symgraph as sg
    import symgraph.tensor as T
    x = T.dvector("x")
    try:
        sg.function([x], x + 1.0, backend=name)(np.zeros(2))
    except Exception as e:  # any failure means the backend is unusable here; say why in one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SystemExit(f"backend {name!r} is not usable on this machine: {first}") from None


def require(module: str, package: str | None = None) -> Any:
    """Import an optional dependency, or exit with a one-line install hint."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise SystemExit(f"{os.path.basename(sys.argv[0]) or 'this example'} needs {package or module}: "
                         f"{INSTALL_HINT}  (or: pip install {package or module})") from None


def pyplot() -> Any:
    """matplotlib.pyplot with a file-only backend (no display needed)."""
    require("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update(STYLE)
    return plt


def progress(iterable: Iterable, total: int | None = None, desc: str = "", enabled: bool = True) -> Iterable:
    """A tqdm progress bar when tqdm is installed (and ``enabled``), else the bare iterable."""
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=desc, leave=False, file=sys.stderr)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table: numbers get 4 significant digits, columns line up."""
    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    cells = [list(map(str, headers))] + [[fmt(v) for v in row] for row in rows]
    widths = [max(len(r[c]) for r in cells) for c in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def small_text(fig: Any) -> list[str]:
    """The visible texts of ``fig`` set smaller than MIN_FONT points (a reader cannot read them)."""
    from matplotlib.text import Text
    return [f"{t.get_text()!r} ({t.get_fontsize():g} pt)" for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip() and t.get_fontsize() < MIN_FONT]


def save_figure(fig: Any, out_dir: str, name: str, dpi: int = 120) -> str:
    """Write ``fig`` to ``out_dir/name`` (tight layout), close it, say so, and return the path.
    ValueError when the figure would be hard to read: dpi under MIN_DPI or text under MIN_FONT."""
    import matplotlib.pyplot as plt
    tiny = small_text(fig)
    problems = ([f"dpi {dpi} (at least {MIN_DPI})"] if dpi < MIN_DPI else []) + \
        ([f"text under {MIN_FONT:g} pt: {', '.join(tiny)}"] if tiny else [])
    if problems:
        plt.close(fig)
        raise ValueError(f"{name} would be hard to read: {'; '.join(problems)}")
    fig.tight_layout()
    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    print(f"wrote {path}")
    return path
