"""(being written) numpy lowerings for reductions, shape ops, dot, indexing and nnet ops."""

# --- reductions, dot, nnet (A1) ---
from symgraph.backends.numpy.lowering import lowers  # noqa: E402
from symgraph.tensor import nnet as _nnet  # noqa: E402
from symgraph.tensor.math import Dot, MatMul, TensorDot  # noqa: E402
from symgraph.tensor.reduction import ArgReduce, BroadcastLike, CAReduce, ReducedSize  # noqa: E402


def _axis_kw(axis: tuple, keepdims: bool) -> str:
    kw = f"axis={axis!r}"
    return kw + ", keepdims=True" if keepdims else kw


@lowers(CAReduce)
def _careduce(node, ins: list[str], ctx) -> str:
    op, (x,), out = node.op, ins, node.outputs[0]
    kw = _axis_kw(op.axis, op.keepdims)
    if op.scalar_op in ("add", "mul") and out.dtype != node.inputs[0].dtype:
        kw += f", dtype=np.{out.dtype}"
    return f"np.{op.np_fn.__name__}({x}, {kw})"


@lowers(ArgReduce)
def _argreduce(node, ins: list[str], ctx) -> str:
    op, (x,) = node.op, ins
    keep = ", keepdims=True" if op.keepdims else ""
    return f"np.{op.np_fn.__name__}({x}, axis={op.axis}{keep})"


@lowers(ReducedSize)
def _reduced_size(node, ins: list[str], ctx) -> str:
    dims = " * ".join(f"{ins[0]}.shape[{a}]" for a in node.op.axis) or "1"
    return f"np.int64({dims})"


@lowers(BroadcastLike)
def _broadcast_like(node, ins: list[str], ctx) -> str:
    return f"np.broadcast_to({ins[0]}, np.shape({ins[1]}))"


@lowers(Dot)
def _dot(node, ins: list[str], ctx) -> str:
    return f"np.dot({ins[0]}, {ins[1]})"


@lowers(MatMul)
def _matmul(node, ins: list[str], ctx) -> str:
    return f"np.matmul({ins[0]}, {ins[1]})"


@lowers(TensorDot)
def _tensordot(node, ins: list[str], ctx) -> str:
    return f"np.tensordot({ins[0]}, {ins[1]}, axes=({node.op.axes_a!r}, {node.op.axes_b!r}))"


def _softmax_family(fn):
    def lower(node, ins: list[str], ctx) -> str | None:
        if node.inputs[0].dtype != node.outputs[0].dtype:  # integer input: perform casts first
            return None
        return f"{ctx.ref(fn, fn.__name__)}({ins[0]}, {node.op.axis})"
    return lower


lowers(_nnet.Softmax)(_softmax_family(_nnet.np_softmax))
lowers(_nnet.LogSoftmax)(_softmax_family(_nnet.np_log_softmax))


@lowers(_nnet.OneHot)
def _one_hot(node, ins: list[str], ctx) -> str:
    return f"{ctx.ref(_nnet.np_one_hot, 'one_hot')}({ins[0]}, np.shape({ins[1]})[-1])"
