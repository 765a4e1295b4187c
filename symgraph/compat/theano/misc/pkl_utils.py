"""theano.misc.pkl_utils: symgraph saves with its own safe format (sg.save / sg.load), which never
runs code from the file; Theano's zip-of-pickles is not read."""
from symgraph.serialize import load, save  # noqa: F401

dump = save
