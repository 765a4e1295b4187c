"""Stream draws a scan step reads from outside (Theano's rule): a draw built before ``scan`` and
read by the step (closed over, not passed in ``non_sequences``) is drawn anew at every step, as
Theano's scan recomputed everything between the step's outputs and its inputs; a draw passed in
``non_sequences`` is computed once and every step reads the same numbers (a mask shared by
all steps). Each such draw's counter word c3 (0, marked ``outside_loop`` by
``random_ops.step_word``) becomes the loop's step, so step t draws what the draw site gives with
c3 = t, the numbers the same draw built inside the step would give."""
from __future__ import annotations

from collections.abc import Sequence

from symgraph.graph.basic import Constant, Variable
from symgraph.graph.traversal import ancestors, clone_replace_parts


def redraw_per_step(body: list[list], blockers: Sequence[Variable], step: Variable) -> None:
    """Rebuild the lists of the body's outputs in ``body`` (in place) with every outside draw they
    reach without passing ``blockers`` (the step's placeholders and the listed non_sequences)
    reading ``step`` as its counter word c3."""
    marked = [v for v in ancestors([v for part in body for v in part], blockers=list(blockers))
              if isinstance(v, Constant) and v.tag.get("outside_loop")]
    if marked:
        clone_replace_parts(body, dict.fromkeys(marked, step))
