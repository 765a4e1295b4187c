"""symgraph.compat.theano: the import change, Theano's module paths, the gof.opt optimizer
adapters, optdb, typed lists, makeTester, the test helpers, and shared variables' borrow
semantics (get_value/set_value with Theano's meaning)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import symgraph as sg
import symgraph.compat.theano as theano
import symgraph.compat.theano.tensor as TT
import symgraph.tensor as T
from symgraph.compat.theano import gof
from symgraph.compat.theano.gof.opt import MergeOptimizer, OpRemove, OpSub, PatternSub, TopoOptimizer
from symgraph.compat.theano.scalar import add, float64, identity, mul, true_div
from symgraph.graph import Op
from theano_docs.imports import port_line, port_source


def test_the_import_change_rewrites_import_statements_only():
    cases = {
        "import theano": "import symgraph.compat.theano as theano",
        "import theano.tensor as T": "import symgraph.compat.theano.tensor as T",
        "import numpy, theano  # two": "import numpy, symgraph.compat.theano as theano  # two",
        "import theano.tests": "import symgraph.compat.theano.tests, symgraph.compat.theano as theano",
        "  from theano import function, In": "  from symgraph.compat.theano import function, In",
        "from theano.gof.opt import OpSub": "from symgraph.compat.theano.gof.opt import OpSub",
        "x = theano.tensor.dmatrix('import theano')": "x = theano.tensor.dmatrix('import theano')",
        "import theanos": "import theanos",
    }
    for line, want in cases.items():
        assert port_line(line) == want, line
    ns: dict = {}
    exec(compile(port_source("import theano\nimport theano.tensor as T\nx = T.dmatrix('x')"), "<t>", "exec"), ns)
    assert ns["x"].type is T.dmatrix and ns["theano"] is theano


def test_theano_paths_are_symgraphs_objects():
    assert TT.dmatrix is T.dmatrix and TT.exp is T.exp and theano.function is sg.function
    assert theano.tensor.nnet.sigmoid is T.sigmoid and TT.abs_ is T.abs and TT.truediv is T.true_div
    assert theano.printing.pp is sg.printing.pprint and theano.gof.Op is Op
    assert theano.compile.ops.as_op is sg.as_op and theano.gradient.verify_grad is sg.testing.verify_grad
    assert float64 == T.dscalar and add is T.add
    with pytest.raises(AttributeError, match="no 'scan_like_thing'"):
        theano.scan_like_thing
    x, y = TT.dscalars("x", "y")
    r = TT.inplace.add_inplace(x, y)  # the ordinary op: symgraph never writes into a value
    assert sg.function([x, y], [r, T.log(x)])(1.0, 2.0)[0] == 3.0


def test_module_paths_of_landed_capabilities(tmp_path):
    from symgraph.compat.theano.ifelse import ifelse
    from symgraph.compat.theano.sandbox.rng_mrg import MRG_RandomStreams
    from symgraph.compat.theano.tensor.shared_randomstreams import RandomStreams
    assert ifelse is sg.ifelse and MRG_RandomStreams is sg.MRG_RandomStreams
    assert RandomStreams is sg.shared_randomstreams.RandomStreams
    assert theano.OpFromGraph is theano.compile.builders.OpFromGraph is sg.OpFromGraph
    x = TT.dvector("x")
    f = sg.function([x], T.exp(x).sum())
    out = tmp_path / "made" / "f.html"  # d3viz makes the folder, as Theano's did
    theano.d3viz.d3viz(f, out)
    assert out.read_text().startswith("<!DOCTYPE html>")


def test_module_paths_of_the_deep_learning_tutorials():
    """LeNet's imports (tests/dlt/code/convolutional_mlp.py): Theano's pooling module and conv2d
    under theano.tensor.nnet, the same functions as symgraph's, with Theano's arguments."""
    from symgraph.compat.theano.tensor.nnet import conv2d
    from symgraph.compat.theano.tensor.signal import pool
    from symgraph.tensor.signal import pool as sg_pool
    assert conv2d is T.nnet.conv2d and pool.pool_2d is sg_pool.pool_2d and theano.tensor.signal.pool is pool
    x, w = TT.tensor4("x"), TT.tensor4("w")
    out = pool.pool_2d(input=conv2d(input=x, filters=w, filter_shape=(2, 1, 3, 3), input_shape=(1, 1, 6, 6)),
                       ds=(2, 2), ignore_border=True)
    xv, wv = np.arange(36.0).reshape(1, 1, 6, 6), np.ones((2, 1, 3, 3))
    got = sg.function([x, w], out)(xv, wv)
    sums = np.array([[xv[0, 0, i:i + 3, j:j + 3].sum() for j in range(4)] for i in range(4)])
    np.testing.assert_array_equal(got, np.broadcast_to(sums.reshape(2, 2, 2, 2).max(axis=(1, 3)), (1, 2, 2, 2)))


class Simplify(gof.Optimizer):
    """The tutorial's global optimizer: (x * y) / y -> x through replace_validate."""

    def add_requirements(self, fgraph):
        fgraph.attach_feature(gof.toolbox.ReplaceValidate())

    def apply(self, fgraph):
        for node in fgraph.toposort():
            if node.op == true_div:
                x, y = node.inputs
                if x.owner and x.owner.op == mul:
                    a, b = x.owner.inputs
                    if y is a:
                        fgraph.replace_validate(node.outputs[0], b)
                    elif y is b:
                        fgraph.replace_validate(node.outputs[0], a)


def _graph(build):
    x, y, z = float64("x"), float64("y"), float64("z")
    return gof.FunctionGraph([x, y, z], [build(x, y, z)]), (x, y, z)


def test_global_and_merge_optimizers():
    e, (x, _, z) = _graph(lambda x, y, z: add(z, mul(true_div(mul(y, x), y), true_div(z, x))))
    Simplify().optimize(e)
    assert str(sg.printing.pprint(e.outputs[0])) == "(z + x * (z / x))"
    e, (x, _, _) = _graph(lambda x, y, z: true_div(mul(add(y, z), x), add(y, z)))
    Simplify().optimize(e)
    assert e.outputs[0] is not x  # two separate add(y, z) nodes: no match yet
    MergeOptimizer().optimize(e)
    Simplify().optimize(e)
    assert e.outputs[0] is x


def test_local_optimizers_and_patterns():
    class LocalSimplify(gof.LocalOptimizer):
        def transform(self, node):
            if node.op == true_div:
                x, y = node.inputs
                if x.owner and x.owner.op == mul:
                    a, b = x.owner.inputs
                    return [b] if y is a else [a] if y is b else False
            return False

    e, (x, _, z) = _graph(lambda x, y, z: add(z, mul(true_div(mul(y, x), y), true_div(z, x))))
    TopoOptimizer(LocalSimplify()).optimize(e)
    assert sg.printing.pprint(e.outputs[0]) == "(z + x * (z / x))"
    e, (x, y, z) = _graph(lambda x, y, z: true_div(mul(x, y), y))
    TopoOptimizer(PatternSub((true_div, (mul, "x", "y"), "y"), "x")).optimize(e)
    assert e.outputs[0] is x
    e, (x, y, z) = _graph(lambda x, y, z: add(identity(x), y))
    TopoOptimizer(OpRemove(identity)).optimize(e)
    TopoOptimizer(OpSub(add, mul)).optimize(e)
    assert sg.printing.pprint(e.outputs[0]) == "(x * y)"


def test_optdb_registers_a_global_optimizer_and_queries_modes():
    from symgraph.compat.theano.compile import optdb
    from symgraph.compat.theano.gof import Query
    mode = optdb.query(Query(include=["fast_run"], exclude=["inplace", "local_elemwise_fusion"]))
    assert mode.base == "fast_run" and mode.exclude == {"fusion"}
    optdb.register("simplify_test", Simplify(), 0.5, "fast_run")
    try:
        x, y = T.dscalars("xy")
        f = sg.function([x, y], (x * y) / y)
        assert f.graph.toposort() == [] and "simplify_test" in [p["name"] for p in f.rewrite_report()["passes"]]
    finally:
        sg.rewrite.unregister("simplify_test")


def test_get_scalar_constant_value():
    from symgraph.compat.theano.tensor.opt import NotScalarConstantError, get_scalar_constant_value
    assert get_scalar_constant_value(T.zeros((5,))) == 0
    assert get_scalar_constant_value(T.constant(np.full(3, 2.5))) == 2.5
    with pytest.raises(NotScalarConstantError):
        get_scalar_constant_value(T.dvector())
    with pytest.raises(NotScalarConstantError):
        get_scalar_constant_value(T.constant([1.0, 2.0]))


def test_typed_lists(backend):
    """Typed lists (the host runs their ops on OpenCL, with a warning; a list output is returned
    as the list, not made an array: Theano's typed_list page on OpenCL)."""
    from symgraph.compat.theano import typed_list
    tl = typed_list.TypedListType(T.fvector)()
    v = T.fvector("v")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # OpenCL: the list ops run on the host
        f = sg.function([tl, v], [typed_list.append(tl, v), typed_list.length(tl), tl[0]], backend=backend)
        g = sg.function([tl], typed_list.extend(tl, tl), backend=backend)
    out, n, first = f([[1, 2, 3], [4, 5]], [2])
    assert [o.tolist() for o in out] == [[1, 2, 3], [4, 5], [2]] and out[0].dtype == np.float32
    assert n == 2 and first.tolist() == [1, 2, 3]
    assert len(g([[1.0]])) == 2
    with pytest.raises(TypeError, match="expected a list"):
        f(np.ones(3), [1])
    with pytest.raises(TypeError, match="the list holds"):
        typed_list.append(tl, T.dmatrix())


def test_make_tester_builds_a_working_test_case():
    import unittest
    from symgraph.compat.theano.tensor.tests.test_basic import makeTester
    rand = np.random.default_rng(0).random
    DotTester = makeTester(name="DotTester", op=T.dot, expected=np.dot, checks={},
                           good=dict(correct1=(rand((5, 7)), rand((7, 5))), correct3=(rand((5, 7)), rand(7))),
                           bad_build=dict(bad=(rand((5, 7)), np.array(["a", "b"]))),
                           bad_runtime=dict(bad1=(rand((5, 7)), rand((5, 7)))),
                           grad=dict(g=(rand((3, 2)), rand((2, 4)))))
    result = unittest.TextTestRunner(stream=open("/dev/null", "w")).run(
        unittest.defaultTestLoader.loadTestsFromTestCase(DotTester))
    assert result.wasSuccessful() and result.testsRun == 4 and DotTester.__name__ == "DotTester"
    Broken = makeTester(name="Broken", op=T.dot, expected=lambda a, b: np.dot(a, b) + 1,
                        good=dict(c=(rand((2, 2)), rand((2, 2)))))
    result = unittest.TextTestRunner(stream=open("/dev/null", "w")).run(
        unittest.defaultTestLoader.loadTestsFromTestCase(Broken))
    assert len(result.failures) == 1


def test_theano_test_helpers():
    from symgraph.compat.theano.tests import unittest_tools as utt
    from symgraph.compat.theano.tests.test_rop import RopLop_checker

    class DoubleTest(utt.InferShapeTester):
        def runTest(self):
            x = T.matrix()
            self._compile_and_check([x], [x * 2 + T.sort(x)], [np.random.rand(5, 4)], T.Sort)

    class RopTest(RopLop_checker):
        def runTest(self):
            self.check_rop_lop(T.tanh(self.x) * 2, self.in_shape)
            self.check_mat_rop_lop(self.mx.sum(axis=0) ** 2, (self.mat_in_shape[1],))
    for case in (DoubleTest(), RopTest()):
        case.setUp()
        case.runTest()
    utt.assert_allclose(np.ones(2), np.ones(2) + 1e-9)
    assert utt.fetch_seed(7) == 7 and utt.seed_rng() == utt.fetch_seed()


# ---------------------------------------------------------------- shared variables (item 4, shared.py)
def test_shared_borrow_semantics(backend):
    a = np.ones(2)
    s_copy, s_borrow = sg.shared(a), sg.shared(a, borrow=True)
    a += 1
    assert s_copy.get_value().tolist() == [1.0, 1.0] and s_borrow.get_value().tolist() == [2.0, 2.0]
    internal = s_borrow.get_value(borrow=True)
    assert internal is a and s_borrow.get_value() is not a
    b = np.zeros(2)
    s_borrow.set_value(b, borrow=True)
    assert s_borrow.get_value(borrow=True) is b
    s_borrow.set_value(b)
    assert s_borrow.get_value(borrow=True) is not b
    x = T.dvector("x")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        f = sg.function([x], x, updates=[(s_copy, s_copy * 3)], backend=backend)
    f(np.ones(2))
    value = s_copy.get_value(borrow=True, return_internal_type=True)
    if backend == "opencl":  # the newest value lives on the device: its own array type
        assert type(value).__name__ == "DeviceArray"
        s_copy.set_value(value, borrow=True)
        np.testing.assert_array_equal(s_copy.get_value(), [3.0, 3.0])
        copy = s_copy.get_value(return_internal_type=True)
        assert type(copy).__name__ == "DeviceArray" and copy.buffer is not value.buffer
    else:
        assert isinstance(value, np.ndarray)
    f(np.ones(2))
    np.testing.assert_array_equal(s_copy.get_value(), [9.0, 9.0])
    with pytest.raises(TypeError, match="expected dtype float64"):
        s_copy.set_value(np.ones(2, dtype="complex128"))


def test_theano_config_flags():
    """Theano's flags: symgraph's own are sg.config's, optimizer and mode translate, the flags of
    machinery symgraph lacks read Theano's defaults and take any value, nested flags work in both
    spellings, the rewrite selectors and unknown names raise."""
    cfg = theano.config
    with theano.change_flags(floatX="float32", compute_test_value="warn"):
        assert sg.config.floatX == "float32" and cfg.floatX == "float32" and sg.config.compute_test_value == "warn"
    assert sg.config.floatX == "float64" and sg.config.compute_test_value == "off"
    with cfg.change_flags(optimizer="None"):
        assert sg.config.mode == "none" and cfg.optimizer == "None"
    with cfg.change_flags(mode="FAST_COMPILE"):
        assert sg.config.mode == "fast_compile" and cfg.mode == "FAST_COMPILE"
    with cfg.change_flags(mode="DebugMode"):
        x = TT.dvector("x")
        assert type(theano.function([x], x * 2)._impl).__name__ == "_Debug"  # every function is a DebugMode one
    assert cfg.mode == "FAST_RUN" and cfg.device == "cpu" and cfg.cxx == "" and cfg.exception_verbosity == "low"
    assert cfg.warn.subtensor_merge_bug is False and cfg.warn__round is False and cfg.dnn.conv.algo_fwd == "small"
    with cfg.change_flags(warn__round=True, exception_verbosity="high"):
        assert cfg.warn.round is True and cfg.exception_verbosity == "high"
    cfg.warn.subtensor_merge_bug = False  # rnnrbm.py's first line
    with cfg.change_flags(on_unused_input="ignore"):
        x, y = TT.dvector("x"), TT.dvector("y")
        assert theano.function([x, y], x * 2)(np.ones(1), np.ones(1)) == 2.0
    with pytest.raises(ValueError, match="Mode\\(\\)\\.excluding"):
        cfg.optimizer_excluding = "fusion"
    with pytest.raises(AttributeError, match="no flag 'nosuchflag'"):
        cfg.nosuchflag = 1
    with pytest.raises(AttributeError, match="group of flags"):
        cfg.warn = False
    with pytest.raises(ValueError, match="optimizer must be one of"):
        cfg.optimizer = "o7"


def test_sg_config_mode_takes_theanos_names_and_special_modes():
    with sg.config.change_flags(mode="FAST_COMPILE"):
        assert sg.config.mode == "fast_compile"
    with pytest.raises(ValueError, match="NanGuardMode"):
        sg.config.mode = "nosuchmode"


def test_theano_tensor_xlogx_is_the_module():
    assert TT.xlogx.xlogx is T.xlogx and TT.xlogx.xlogy0 is T.xlogy0
    from symgraph.compat.theano.tensor.xlogx import xlogy0
    x = TT.dvector("x")
    np.testing.assert_allclose(theano.function([x], xlogy0(x, x + 1))(np.array([0.0, 2.0])), [0.0, 2 * np.log(3)])


def test_theano_softmax_of_a_vector_is_one_row():
    """Theano's Softmax/LogSoftmax took matrices and padded a vector to one row; symgraph's own
    softmax keeps the shape. TT.nnet is the compat module whatever was imported first."""
    import symgraph.tensor.nnet as sg_nnet
    assert TT.nnet.softmax is not sg_nnet.softmax and TT.nnet.sigmoid is sg_nnet.sigmoid
    v, m = TT.dvector("v"), TT.dmatrix("m")
    f = theano.function([v, m], [TT.nnet.softmax(v), TT.nnet.logsoftmax(v), TT.nnet.softmax(m), T.nnet.softmax(v)])
    vv, mv = np.array([1.0, 2.0, 3.0]), np.arange(6.0).reshape(2, 3)
    row, log_row, rows, plain = f(vv, mv)
    e = np.exp(vv - 3)
    np.testing.assert_allclose(row, [e / e.sum()], rtol=1e-12)
    np.testing.assert_allclose(log_row, np.log([e / e.sum()]), rtol=1e-12)
    assert rows.shape == (2, 3) and plain.shape == (3,)
    with pytest.raises(ValueError, match="vector or a matrix"):
        TT.nnet.softmax(TT.tensor3("t"))


def test_theano_07_conv_downsample_and_flatten_outdim():
    """The classic tutorials' older API (Newmu's Theano-Tutorials' convnet): nnet.conv.conv2d with
    border_mode 'full' and ConvOp's tuning arguments, downsample.max_pool_2d pooling a partial
    border window (that version's ignore_border=False), flatten(outdim=...)."""
    from symgraph.compat.theano.tensor.nnet.conv import conv2d as old_conv2d
    from symgraph.compat.theano.tensor.signal.downsample import max_pool_2d
    rng = np.random.default_rng(0)
    x, w = TT.dtensor4("x"), TT.dtensor4("w")
    xv, wv = rng.normal(size=(2, 1, 13, 13)), rng.normal(size=(3, 1, 3, 3))
    old = old_conv2d(x, w, border_mode="full", image_shape=(2, 1, 13, 13), unroll_batch=2, openmp=False)
    f = theano.function([x, w], [old, TT.nnet.conv2d(x, w, border_mode="full"), max_pool_2d(x, (2, 2)),
                                 max_pool_2d(x, (2, 2), ignore_border=True), TT.flatten(x, outdim=2)])
    a, b, pooled, cut, flat = f(xv, wv)
    assert a.shape == (2, 3, 15, 15) and np.array_equal(a, b)
    assert pooled.shape == (2, 1, 7, 7) and cut.shape == (2, 1, 6, 6)
    assert pooled[0, 0, 6, 6] == xv[0, 0, 12, 12]  # the partial window at the corner
    assert flat.shape == (2, 169) and x.flatten(outdim=3).ndim == 3
    with pytest.raises(ValueError, match="'valid' or 'full'"):
        old_conv2d(x, w, border_mode="half")
    with pytest.raises(TypeError, match="unexpected arguments"):
        old_conv2d(x, w, bogus=1)
