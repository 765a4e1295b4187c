"""theano.tests: the test helpers op authors used (unittest_tools, test_rop)."""
