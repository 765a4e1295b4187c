"""Theano's Deep Learning Tutorials (tests/dlt/code, vendored verbatim) run on symgraph with only
their imports changed, on tiny synthetic datasets in the tutorials' own file formats
(tests/dlt/data.py). Each test calls a tutorial's entry function with small settings and checks
what it printed or saved against an independent numpy computation of the same training
(tests/dlt/reference.py), or checks that it learns and that the OpenCL backend prints the same
numbers as the numpy backend. SYMGRAPH_LONG_TESTS=1 adds three more OpenCL runs (logistic_cg,
HMC, LSTM), which the 40 s budget of this file leaves out.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import pickle
import re
import sys
import warnings

import numpy as np
import pytest
from conftest import NO_OPENCL
from dlt import data, reference
from dlt.runner import Run, run

LONG = os.environ.get("SYMGRAPH_LONG_TESTS") == "1"
OPENCL = pytest.param("opencl", marks=[pytest.mark.skip(reason=NO_OPENCL)] if NO_OPENCL else [])
OPENCL_LONG = pytest.param("opencl", marks=[pytest.mark.skipif(
    NO_OPENCL is not None or not LONG, reason=NO_OPENCL or "OpenCL run of a slow tutorial: SYMGRAPH_LONG_TESTS=1")])
NO_DASK = pytest.mark.skipif(importlib.util.find_spec("dask") is None, reason="dask is not installed")
VALIDATION = r"validation error ([\d.]+) %"
EPOCH_COST = r"Training epoch \d+, cost(?: is)?\s+(\S+)"

# Each tutorial's settings: (module, entry function, its keyword arguments)
SETTINGS = {
    "logistic_sgd": ("logistic_sgd", "sgd_optimization_mnist", {"n_epochs": 3, "batch_size": 20}),
    "mlp": ("mlp", "test_mlp", {"n_epochs": 5, "batch_size": 20, "n_hidden": 20, "learning_rate": 0.3}),
    "lenet": ("convolutional_mlp", "evaluate_lenet5", {"n_epochs": 3, "batch_size": 20, "nkerns": [4, 4]}),
    "dA": ("dA", "test_dA", {"training_epochs": 2, "batch_size": 20}),
    "rbm": ("rbm", "test_rbm", {"training_epochs": 2, "batch_size": 20, "n_chains": 2, "n_samples": 2, "n_hidden": 20}),
    "logistic_cg": ("logistic_cg", "cg_optimization_mnist", {"n_epochs": 5}),
    "SdA": ("SdA", "test_SdA", {"pretraining_epochs": 2, "training_epochs": 1, "batch_size": 20}),
    "DBN": ("DBN", "test_DBN", {"pretraining_epochs": 2, "training_epochs": 1, "batch_size": 20}),
    "cA": ("cA", "test_cA", {"training_epochs": 2, "batch_size": 20}),
    "lstm": ("lstm", "train_lstm", {"dim_proj": 16, "n_words": 50, "batch_size": 10, "valid_batch_size": 20,
                                    "dispFreq": 1, "validFreq": 10 ** 6, "saveFreq": 10 ** 6}),
}


@pytest.fixture
def workdir(tmp_path) -> str:
    """A scratch directory holding mnist.pkl.gz and imdb.pkl."""
    data.write_mnist(str(tmp_path))
    data.write_imdb(str(tmp_path))
    return str(tmp_path)


def _run_on(directory: str, name: str, backend: str, **overrides) -> Run:
    """The tutorial ``name`` with its settings (and ``overrides``) on ``backend``; on dask, the
    warnings of its fallbacks (one task for an op without a chunked lowering, tested in
    test_dask_backend.py) are expected."""
    module, function, kwargs = SETTINGS[name]
    with warnings.catch_warnings():
        if backend == "dask":
            warnings.simplefilter("ignore", RuntimeWarning)
        return run(directory, module, function, {"backend": backend}, **{**kwargs, **overrides})


_numpy_runs: dict[str, Run] = {}


def numpy_run(name: str, tmp_path_factory, **overrides) -> Run:
    """The tutorial's run on the numpy backend (once per session: the OpenCL tests compare with it)."""
    key = name + repr(sorted(overrides.items()))
    if key not in _numpy_runs:
        d = str(tmp_path_factory.mktemp(name))
        data.write_mnist(d)
        data.write_imdb(d)
        module, function, kwargs = SETTINGS[name]
        _numpy_runs[key] = run(d, module, function, {"backend": "numpy"}, **{**kwargs, **overrides})
    return _numpy_runs[key]


def _best_model(module):
    """What logistic_sgd.predict() does (but opening best_model.pkl in binary mode, as Python 3
    needs): unpickle the saved classifier and compile its prediction."""
    with open("best_model.pkl", "rb") as f:
        classifier = pickle.load(f)
    predict = module.theano.function(inputs=[classifier.input], outputs=classifier.y_pred)
    x10 = module.load_data("mnist.pkl.gz")[2][0].get_value()[:10]
    return classifier.W.get_value(), classifier.b.get_value(), predict(x10)


@pytest.mark.parametrize("backend,floatX", [("numpy", "float64"), ("numpy", "float32"),
                                           pytest.param("opencl", "float32", marks=OPENCL.marks),
                                           pytest.param("dask", "float64", marks=NO_DASK)])
def test_logistic_sgd_equals_numpy_sgd(workdir, backend, floatX):
    """Every SGD step of the tutorial is the numpy step: the validation error after each epoch,
    the weights of the best model it pickled, and what the unpickled model predicts. (On dask, the
    minibatch index is a host value, so the slices of the shared dataset have known chunks.)"""
    module, function, kwargs = SETTINGS["logistic_sgd"]
    with warnings.catch_warnings():
        if backend == "dask":  # the label lookup and its gradient run as one task, with a warning
            warnings.simplefilter("ignore", RuntimeWarning)
        r = run(workdir, module, function, {"backend": backend, "floatX": floatX}, inspect=_best_model, **kwargs)
    train, valid, test = data.mnist_like()
    errors, snapshots = reference.logistic_sgd(train, valid, kwargs["n_epochs"], kwargs["batch_size"], dtype=floatX)
    np.testing.assert_allclose(r.numbers(VALIDATION), errors, atol=1e-6)
    assert errors[-1] < errors[0] - 30  # the data are learnable: the check is not of a model that stays put
    W, b, predicted = r.inspected
    ref_W, ref_b = snapshots[int(np.argmin(errors))]
    tol = 1e-10 if floatX == "float64" else 2e-5
    assert W.dtype == floatX
    np.testing.assert_allclose(W, ref_W, rtol=tol, atol=tol)
    np.testing.assert_allclose(b, ref_b, rtol=tol, atol=tol)
    np.testing.assert_array_equal(predicted, (test[0][:10].astype(floatX) @ ref_W + ref_b).argmax(axis=1))


@pytest.mark.parametrize("backend", ["numpy", OPENCL, pytest.param("dask", marks=NO_DASK)])
def test_mlp_equals_numpy_sgd(workdir, backend):
    """The MLP's validation error after each epoch is that of the same SGD written in numpy."""
    kwargs = SETTINGS["mlp"][2]
    r = _run_on(workdir, "mlp", backend)
    train, valid, _ = data.mnist_like()
    errors = reference.mlp(train, valid, kwargs["n_epochs"], kwargs["batch_size"], kwargs["n_hidden"],
                           kwargs["learning_rate"])
    np.testing.assert_allclose(r.numbers(VALIDATION), errors, atol=1e-6)
    assert errors[-1] < errors[0] - 15


@pytest.mark.parametrize("backend", ["numpy", OPENCL_LONG])
def test_logistic_cg_equals_scipy_cg_in_numpy(tmp_path, backend):
    """scipy's conjugate gradient on the compiled cost and gradient (theta set with borrow=True,
    gradients summed in place into a returned array) takes the steps it takes on numpy's."""
    rows = (1200, 600, 600)  # the tutorial's minibatch is 600 rows
    data.write_mnist(str(tmp_path), rows=rows)
    module, function, kwargs = SETTINGS["logistic_cg"]
    r = run(str(tmp_path), module, function, {"backend": backend}, **kwargs)
    train, valid, _ = data.mnist_like(rows)
    errors = reference.logistic_cg(train, valid, kwargs["n_epochs"])
    assert len(errors) == kwargs["n_epochs"] and max(errors) < 20
    # CG's line searches amplify last-bit differences of the gradient (numpy and BLAS versions sum
    # in other orders): the validation error may differ by one sample of the 600 in an epoch
    one_sample = 100 / rows[1]
    np.testing.assert_allclose(r.numbers(VALIDATION), errors, atol=one_sample + 1e-6)


@pytest.mark.parametrize("name", ["SdA", "DBN"])
def test_stacked_models_pretrain_and_finetune(tmp_path, name):
    """The stacked denoising autoencoders (dAs sharing the MLP's weights) and the deep belief net
    (RBMs sharing them) pretrain layer by layer, each layer's cost falling, then fine-tune."""
    data.write_mnist(str(tmp_path), rows=(60, 40, 40))  # 1000-unit layers are hard-coded: few rows
    module, function, kwargs = SETTINGS[name]
    r = run(str(tmp_path), module, function, {"backend": "numpy"}, **kwargs)
    costs = r.numbers(r"Pre-training layer \d, epoch \d, cost\s+(\S+)")
    assert len(costs) == 3 * kwargs["pretraining_epochs"] == 6 and np.isfinite(costs).all()
    # each layer's second epoch improves on its first by 5%: SdA's reconstruction cost falls, DBN's
    # (negative) log pseudo-likelihood rises toward 0
    assert all(costs[2 * i + 1] < 0.95 * costs[2 * i] if name == "SdA" else costs[2 * i + 1] > 0.95 * costs[2 * i]
               for i in range(3)), costs
    errors = r.numbers(VALIDATION)
    assert len(errors) == kwargs["training_epochs"] and 0 <= errors[0] <= 100


@functools.lru_cache(maxsize=1)
def _lenet_reference() -> tuple[float, ...]:
    _, _, kwargs = SETTINGS["lenet"]
    train, valid, _ = data.mnist_like()
    return tuple(reference.lenet(train, valid, kwargs["n_epochs"], kwargs["batch_size"], kwargs["nkerns"]))


@pytest.mark.parametrize("backend", ["numpy", OPENCL, pytest.param("dask", marks=NO_DASK)])
def test_lenet_equals_numpy_sgd(workdir, backend):
    """LeNet (conv2d with its flipped filters, max pool_2d, tanh, the MLP on top) trains as the same
    network written in numpy does: the same validation error after each epoch, well below chance.
    (On dask the convolution and the pool run as one task each, with a warning.)"""
    r = _run_on(workdir, "lenet", backend)
    errors = _lenet_reference()
    np.testing.assert_allclose(r.numbers(VALIDATION), errors, atol=1e-6)
    assert errors[-1] < 50 and errors[-1] < errors[0] - 10, errors


def test_dA_equals_numpy_and_draws_its_filters(tmp_path_factory):
    """The denoising autoencoder without corruption costs what the numpy computation costs, epoch by
    epoch; with 30% corruption (random draws) it learns too; both filter images are written."""
    r = numpy_run("dA", tmp_path_factory)
    costs = r.numbers(EPOCH_COST)
    epochs = SETTINGS["dA"][2]["training_epochs"]
    assert len(costs) == 2 * epochs and np.isfinite(costs).all()
    want = reference.dA_without_corruption(data.mnist_like()[0][0], epochs, SETTINGS["dA"][2]["batch_size"])
    np.testing.assert_allclose(costs[:epochs], want, rtol=1e-10)
    assert costs[-1] < costs[epochs]  # the corrupted run learns as well
    from PIL import Image
    for name in ("filters_corruption_0.png", "filters_corruption_30.png"):  # 10x10 tiles of 28x28, 1 apart
        assert Image.open(os.path.join(r.directory, "dA_plots", name)).size == (289, 289)


@pytest.mark.parametrize("backend", [OPENCL, pytest.param("dask", marks=NO_DASK)])
def test_dA_same_on_opencl_and_dask(workdir, backend, tmp_path_factory):
    """The same costs on OpenCL and dask, the corrupted run's random draws included."""
    r = _run_on(workdir, "dA", backend)
    np.testing.assert_allclose(r.numbers(EPOCH_COST), numpy_run("dA", tmp_path_factory).numbers(EPOCH_COST),
                               rtol=1e-9)


def test_rbm_trains_and_samples(tmp_path_factory):
    """The RBM (persistent CD through a scan over Gibbs steps with random draws in its body) trains
    with a finite pseudo-likelihood cost and writes its filters and its chain's samples."""
    r = numpy_run("rbm", tmp_path_factory)
    costs = r.numbers(EPOCH_COST)
    assert len(costs) == SETTINGS["rbm"][2]["training_epochs"] and np.isfinite(costs).all()
    # the log pseudo-likelihood of 784 pixels: about 784 log 1/2 = -543 untrained (-541 and -543 with
    # learning_rate=0), -522 and -498 trained
    assert all(c < 0 for c in costs) and costs[-1] > 784 * np.log(0.5) + 25, costs
    pictures = set(os.listdir(os.path.join(r.directory, "rbm_plots")))
    assert {"filters_at_epoch_0.png", "filters_at_epoch_1.png", "samples.png"} <= pictures


@pytest.mark.parametrize("backend", [OPENCL, pytest.param("dask", marks=NO_DASK)])
def test_rbm_same_on_opencl_and_dask(workdir, backend, tmp_path_factory):
    """The same costs on OpenCL and dask: the Gibbs chain draws the same numbers on every backend.
    (On dask the chain's scan runs as one task, with a warning, and what reads its trace too.)"""
    r = _run_on(workdir, "rbm", backend)
    np.testing.assert_allclose(r.numbers(EPOCH_COST), numpy_run("rbm", tmp_path_factory).numbers(EPOCH_COST),
                               rtol=1e-9)


def _hmc_samples(module) -> tuple:
    """hmc/test_hmc.py's sampler on its 5-d Gaussian (500 burn-in draws, 500 draws), then 300 more
    draws of its 3 chains: (sampler, samples)."""
    sampler = module.sampler_on_nd_gaussian(module.HMC_sampler.new_from_shared_positions,
                                            burnin=500, n_samples=500, dim=5)
    return sampler, np.concatenate([sampler.draw() for _ in range(300)])


@pytest.mark.parametrize("backend", ["numpy", OPENCL_LONG])
def test_hmc_samples_the_gaussian(workdir, backend):
    """The HMC sampler (leapfrog steps in a scan, Metropolis-Hastings with MRG draws, a step size
    adapted through shared updates) passes its tutorial's own checks and draws the target Gaussian."""
    r = run(workdir, "hmc.test_hmc", None, {"backend": backend}, inspect=_hmc_samples)
    sampler, samples = r.inspected
    assert abs(sampler.avg_acceptance_rate.get_value() - sampler.target_acceptance_rate) < 0.1  # test_hmc's
    assert sampler.stepsize_min <= sampler.stepsize.get_value() <= sampler.stepsize_max
    rng = np.random.RandomState(123)  # test_hmc's target: its first draws
    mu, cov = rng.rand(5) * 10, rng.rand(5, 5)
    cov = (cov + cov.T) / 2
    cov[np.arange(5), np.arange(5)] = 1.0
    np.testing.assert_allclose(samples.mean(axis=0), mu, atol=0.3)
    np.testing.assert_allclose(np.cov(samples.T), cov, atol=0.3)


def _lstm_epoch_costs(r: Run) -> list[float]:
    lines = [line.split() for line in r.out.splitlines() if line.startswith("Epoch ")]
    epochs = sorted({int(line[1]) for line in lines})
    return [float(np.mean([float(line[5]) for line in lines if int(line[1]) == e])) for e in epochs]


def test_lstm_learns_the_sentiment(tmp_path_factory):
    """The LSTM (scan over masked sequences, dropout, adadelta) learns which half of the vocabulary
    a review's words come from, and saves its parameters."""
    r = numpy_run("lstm", tmp_path_factory, max_epochs=30)
    costs = _lstm_epoch_costs(r)
    assert len(costs) == 30 and np.isfinite(costs).all()
    assert costs[-1] < 0.5 * costs[0], costs
    train_err, valid_err, test_err = r.result
    assert train_err < 0.2 and test_err < 0.3, r.result
    saved = np.load(os.path.join(r.directory, "lstm_model.npz"))
    assert {"Wemb", "lstm_W", "lstm_U", "U", "b"} <= set(saved.files)


@pytest.mark.parametrize("backend", [OPENCL_LONG, pytest.param("dask", marks=NO_DASK)])
def test_lstm_same_on_opencl_and_dask(workdir, backend, tmp_path_factory):
    """Two epochs on OpenCL or dask cost what they cost on numpy, update by update (dropout's draws
    included)."""
    r = _run_on(workdir, "lstm", backend, max_epochs=2)
    want = numpy_run("lstm", tmp_path_factory, max_epochs=2)
    np.testing.assert_allclose(r.numbers(r"Cost\s+(\S+)"), want.numbers(r"Cost\s+(\S+)"), rtol=1e-9)


CA_PRINTED = r"Training epoch \d+, reconstruction cost\s+(\S+)\s+jacobian norm\s+(\S+)"


@pytest.mark.parametrize("backend", ["numpy", OPENCL, pytest.param("dask", marks=NO_DASK)])
def test_cA_equals_numpy_sgd(workdir, backend):
    """The contractive autoencoder prints what the same training in numpy gives, epoch by epoch
    (its contraction term is a floor division of floats, ``//``, so it has no gradient: the
    tutorial trains the reconstruction alone; and it prints the first minibatches' numbers, as
    reference.cA_printed explains), and draws its filters."""
    r = _run_on(workdir, "cA", backend)
    printed = [tuple(map(float, pair)) for pair in re.findall(CA_PRINTED, r.out)]
    kw = SETTINGS["cA"][2]
    want = reference.cA_printed(data.mnist_like()[0][0], kw["training_epochs"], kw["batch_size"])
    np.testing.assert_allclose(printed, want, rtol=1e-9)
    from PIL import Image
    assert Image.open(os.path.join(r.directory, "cA_plots", "cae_filters.png")).size == (289, 289)


def _rnnrbm(directory: str, backend: str, epochs: int = 3):
    """rnnrbm.RnnRbm, small (20 pitches, 20 hidden units, 15 recurrent ones), trained on two
    synthetic tunes, then one generated sequence: (its run, the generated piano roll)."""
    paths = data.write_midi(directory)

    def train_and_generate(module):
        model = module.RnnRbm(n_hidden=20, n_hidden_recurrent=15, r=(21, 41), lr=0.01)
        model.train(paths, batch_size=20, num_epochs=epochs)
        model.generate(os.path.join(directory, "sample.mid"), show=False)
        with open(os.path.join(directory, "sample.mid"), "rb") as f:
            return np.load(f)
    with warnings.catch_warnings():
        if backend == "dask":  # the scans run as one task each, with a warning (_run_on)
            warnings.simplefilter("ignore", RuntimeWarning)
        return run(directory, "rnnrbm", None, {"backend": backend}, inspect=train_and_generate)


@pytest.fixture
def midi(monkeypatch):
    """The stand-in ``midi`` package (tests/dlt/data.py) the RNN-RBM imports."""
    module = data.midi_module()
    monkeypatch.setitem(sys.modules, "midi", module)
    monkeypatch.setitem(sys.modules, "midi.utils", module.utils)


def test_rnnrbm_learns_and_generates(tmp_path, midi):
    """The RNN-RBM (a scan computing each step's RBM biases; CD-15 through a Gibbs-chain scan
    with draws; generation: a scan whose step runs a 25-step Gibbs chain, nested, returning the
    inner scan's updates) improves its pseudo-likelihood and generates a 0/1 roll of 200 steps."""
    r = _rnnrbm(str(tmp_path), "numpy", epochs=6)
    monitor = [float(v) for v in re.findall(r"Epoch \d+/\d+\n(\S+)", r.out)]
    assert len(monitor) == 6 and np.isfinite(monitor).all()
    assert monitor[-1] > monitor[0] + 0.5, monitor
    roll = r.inspected
    assert roll.shape == (200, 20) and set(np.unique(roll)) <= {0.0, 1.0} and 0 < roll.mean() < 1


@pytest.mark.parametrize("backend", [OPENCL, pytest.param("dask", marks=NO_DASK)])
def test_rnnrbm_same_on_opencl_and_dask(tmp_path, midi, backend):
    """The same pseudo-likelihoods and the same generated roll on OpenCL and dask (the same draws)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    mine, want = _rnnrbm(str(tmp_path / "a"), backend, 2), _rnnrbm(str(tmp_path / "b"), "numpy", 2)
    np.testing.assert_allclose(mine.numbers(r"Epoch \d+/\d+\n(\S+)"), want.numbers(r"Epoch \d+/\d+\n(\S+)"),
                               rtol=1e-9)
    np.testing.assert_array_equal(mine.inspected, want.inspected)


def _rnnslu_check(module, epochs: int = 12) -> dict:
    """rnnslu.RNNSLU, small (8 hidden units, 5 classes, 30 words of 6 dimensions, windows of 3):
    its gradient read from one SGD update (lr = 1: g = p_before - p_after) against central
    differences of the loss ``sentence_train`` returns (lr = 0: no update), then training; its
    parameters are restored between the two."""
    np.random.seed(0)
    model = module.RNNSLU(nh=8, nc=5, ne=30, de=6, cs=3)
    sentences, labels = data.slu_like()
    words = [list(np.asarray(module.contextwin(x, 3)).astype("int32")) for x in sentences]
    start = [p.get_value().copy() for p in model.params]
    model.sentence_train(words[0], labels[0], 1.0)
    analytic = [a - p.get_value() for a, p in zip(start, model.params)]
    for p, a in zip(model.params, start):
        p.set_value(a)
    worst = 0.0
    for p, a, g in zip(model.params, start, analytic):
        for flat in np.random.RandomState(2).choice(a.size, size=min(4, a.size), replace=False):
            loss = []
            for step in (1e-6, -1e-6):
                v = a.copy()
                v.flat[flat] += step
                p.set_value(v)
                loss.append(float(model.sentence_train(words[0], labels[0], 0.0)))
            worst = max(worst, abs((loss[0] - loss[1]) / 2e-6 - g.flat[flat]))
        p.set_value(a)
    accuracy = []
    for _ in range(epochs):
        for w, y in zip(words, labels):
            model.sentence_train(w, y, 0.5)
            model.normalize()
        accuracy.append(np.mean([np.mean(model.classify(w) == y) for w, y in zip(words, labels)]))
    return {"gradient error": worst, "accuracy": accuracy, "emb norms": np.linalg.norm(model.emb.get_value(), axis=1)}


@pytest.mark.parametrize("backend", ["numpy", OPENCL])
def test_rnnslu_gradient_and_learning(tmp_path, backend):
    """The Elman network of the slot-filling tutorial (a scan of softmax rows read as
    ``s[:, 0, :]``, Theano's vector softmax being one row; embeddings gathered by an int32 matrix
    holding -1 for the padding word; its nll gradient and the embedding normalisation as updates):
    its gradient matches central differences of its own loss, and it learns the labels. (Its
    ``main`` downloads ATIS and scores with a Perl script; the class is what it trains.)"""
    limit = sys.getrecursionlimit()  # the tutorial sets it when imported
    try:
        r = run(str(tmp_path), "rnnslu", None, {"backend": backend}, inspect=_rnnslu_check)
    finally:
        sys.setrecursionlimit(limit)
    got = r.inspected
    assert got["gradient error"] < 1e-7, got["gradient error"]
    assert got["accuracy"][-1] > 0.9 > got["accuracy"][0], got["accuracy"]
    np.testing.assert_allclose(got["emb norms"], 1.0, rtol=1e-12)
