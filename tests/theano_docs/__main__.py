"""``python -m tests.theano_docs [PAGE_FILTER] [-v]``: run Theano's documentation examples
through the import change and print how many example groups run (see runner.py)."""
from __future__ import annotations

import sys
from collections import Counter

from tests.theano_docs.runner import run_all


def main(argv: list[str]) -> int:
    verbose = "-v" in argv
    args = [a for a in argv if not a.startswith("-")]
    groups = run_all(args[0] if args else "")
    counts = Counter(g.status for g in groups)
    for status in ("fail", "excluded", "fragment") if verbose else ("fail",):
        for g in groups:
            if g.status == status:
                print(f"{status.upper():9s} {g.name}\n          {g.reason[:400]}")
    if verbose:
        for g in groups:
            if g.status == "pass":
                print(f"PASS      {g.name}")
    counted = counts["pass"] + counts["fail"]
    pct = 100.0 * counts["pass"] / counted if counted else 0.0
    print(f"\n{counts['pass']} of {counted} counted example groups run and print the documented numbers "
          f"({pct:.1f}%); {counts['excluded']} left out (GPU or other open issues), "
          f"{counts['fragment']} code fragments")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
