"""theano.printing: symgraph.printing's names (``pp`` is ``pprint``; pydotprint takes Theano's
keyword arguments or rejects one by name)."""
from symgraph.printing import Print, debugprint, pp, pprint, pydotprint  # noqa: F401
