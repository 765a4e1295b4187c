"""Compatibility layers that give other libraries' module layouts over symgraph (``symgraph.compat.theano``)."""
