"""theano.tensor.tests: the test-case factory op authors used (test_basic.makeTester)."""
