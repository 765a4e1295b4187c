"""``python -m tests.theano_docs [PAGE_FILTER] [-v] [--write-expected]``: run Theano's documentation
examples through the import change and print how many example groups run (see runner.py).
``--write-expected`` records the passing groups in expected_pass.txt (what the test suite guards)."""
from __future__ import annotations

import os
import sys
from collections import Counter

from .runner import run_all

EXPECTED = os.path.join(os.path.dirname(__file__), "expected_pass.txt")


def summary(groups: list) -> str:
    """The headline: passing groups out of those counted, and what was left out."""
    counts = Counter(g.status for g in groups)
    counted = counts["pass"] + counts["fail"]
    pct = 100.0 * counts["pass"] / counted if counted else 0.0
    return (f"{counts['pass']} of {counted} counted example groups run and print the documented numbers "
            f"({pct:.1f}%); {counts['excluded']} left out (GPU-only or other open issues), "
            f"{counts['fragment']} code fragments")


def main(argv: list[str]) -> int:
    verbose = "-v" in argv
    args = [a for a in argv if not a.startswith("-")]
    groups = run_all(args[0] if args else "")
    for status in ("fail", "excluded", "fragment") if verbose else ("fail",):
        for g in groups:
            if g.status == status:
                print(f"{status.upper():9s} {g.name}\n          {g.reason[:400]}")
    if verbose:
        for g in groups:
            if g.status == "pass":
                print(f"PASS      {g.name}")
    if "--write-expected" in argv:
        with open(EXPECTED, "w") as f:
            f.write("# example groups that pass (python -m tests.theano_docs --write-expected)\n")
            f.writelines(f"{g.name}\n" for g in groups if g.status == "pass")
    print("\n" + summary(groups))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
