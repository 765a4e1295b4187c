"""Run under mpirun -np 2 (tests/test_mpi.py): 2 ranks x batch B/2 reach the parameters that one
process reaches with batch B after 100 steps (float64, 1e-12); parameters are broadcast at the
start; the gradients of a step travel in one bucketed all-reduce; T.allreduce sums and averages."""
from __future__ import annotations

import numpy as np

import symgraph as sg
import symgraph.tensor as T
from symgraph.tensor.collective import AllReduceBucket

STEPS, B, D, H, K = 100, 32, 6, 8, 3


def model(seed: int):
    rng = np.random.default_rng(seed)
    return [sg.shared(rng.normal(size=(D, H)) * 0.5, "w1"), sg.shared(np.zeros(H), "b1"),
            sg.shared(rng.normal(size=(H, K)) * 0.5, "w2"), sg.shared(np.zeros(K), "b2")]


def train_step(params, data_parallel: bool, **kwargs):
    w1, b1, w2, b2 = params
    x, y = T.dmatrix("x"), T.lvector("y")
    p = T.nnet.softmax(T.dot(T.tanh(T.dot(x, w1) + b1), w2) + b2)
    loss = T.nnet.categorical_crossentropy(p, y).mean()
    updates = sg.updates.momentum(loss, params, 0.1, data_parallel=data_parallel)
    return sg.function([x, y], loss, updates=updates, **kwargs)


def main() -> None:
    d = sg.distributed
    rank, size = d.rank(), d.size()
    assert size == 2, size
    # values: sum and mean over the ranks
    v = T.dvector("v")
    f = sg.function([v], [T.allreduce(v, "sum"), T.allreduce(v * 2, "mean")])
    s, m = f(np.full(3, rank + 1.0))
    assert np.all(s == 3.0) and np.all(m == 3.0), (s, m)

    params = model(seed=100 + rank)  # different on each rank until broadcast
    d.broadcast_parameters(params, root=0)
    mine = np.concatenate([p.get_value().ravel() for p in params])
    theirs = d.communicator().allgather(mine)
    assert all(np.array_equal(mine, t) for t in theirs), "broadcast_parameters left the ranks different"

    single = sg.function([v], T.allreduce(v, "sum"))  # MPI reads the argument, never writes it
    mine = np.full(3, rank + 1.0)
    first = single(mine)
    second = single(mine * 2)
    assert np.all(mine == rank + 1.0) and np.all(first == 3.0) and np.all(second == 6.0), (mine, first, second)
    check_bucket_in_place(rank)

    step = train_step(params, data_parallel=True)
    buckets = [n for n in step.graph.toposort() if isinstance(n.op, AllReduceBucket)]
    assert len(buckets) == 1 and buckets[0].op.n == 4, [str(n.op) for n in buckets]
    reference = model(seed=100)  # rank 0's initial values, trained by one process on batch B
    full = train_step(reference, data_parallel=False)
    rng = np.random.default_rng(7)
    calls = d.STATS["calls"]
    for _ in range(STEPS):
        xs, ys = rng.normal(size=(B, D)), rng.integers(0, K, B)
        half = slice(rank * B // 2, (rank + 1) * B // 2)
        step(xs[half], ys[half])
        full(xs, ys)
    assert d.STATS["calls"] - calls == STEPS, "one all-reduce call per step"
    for p, q in zip(params, reference):
        np.testing.assert_allclose(p.get_value(), q.get_value(), rtol=1e-12, atol=1e-14)
    print(f"rank {rank}: OK", flush=True)


def check_bucket_in_place(rank: int) -> None:
    """The gradients are computed into the bucket's flat buffer (nothing packed after the first
    call), and the parameters are bitwise those of the same step with one all-reduce per gradient."""
    bucketed, plain = model(seed=3), model(seed=3)
    step = train_step(bucketed, data_parallel=True)
    reference = train_step(plain, data_parallel=True, mode=sg.rewrite.Mode().excluding("bucket_allreduce"))
    assert not any(isinstance(n.op, AllReduceBucket) for n in reference.graph.toposort())
    rng = np.random.default_rng(11 + rank)
    packed = None
    for t in range(5):
        xs, ys = rng.normal(size=(B // 2, D)), rng.integers(0, K, B // 2)
        step(xs, ys)
        reference(xs, ys)
        if t == 0:
            packed = sg.distributed.STATS["packed"]
    assert sg.distributed.STATS["packed"] == packed, "a gradient was copied into the bucket"
    for p, q in zip(bucketed, plain):
        assert np.array_equal(p.get_value(), q.get_value()), p.name


if __name__ == "__main__":
    with sg.distributed.abort_on_error():
        main()
