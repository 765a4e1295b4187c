"""Independent numpy computations of what five tutorials train (logistic_sgd, logistic_cg, mlp,
dA without corruption, LeNet), step for step: the checks that a ported tutorial computes the same
numbers, not just numbers that look like learning.

Each follows the tutorial's own schedule (minibatches in order, one SGD step each, the same
initial weights drawn from the same ``numpy.random.RandomState`` calls in the same order) with
hand-written gradients, never symgraph.
"""
from __future__ import annotations

import numpy as np


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _softmax_grad(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """d mean(-log p[i, y_i]) / d logits."""
    d = p.copy()
    d[np.arange(len(y)), y] -= 1
    return d / len(y)


def logistic_sgd(train: tuple, valid: tuple, epochs: int, batch_size: int, lr: float = 0.13,
                 dtype: str = "float64") -> tuple[list[float], list[tuple[np.ndarray, np.ndarray]]]:
    """logistic_sgd.sgd_optimization_mnist: (validation error in % after each epoch, (W, b) after each)."""
    (tx, ty), (vx, vy) = train, valid
    tx, vx = tx.astype(dtype), vx.astype(dtype)
    W, b = np.zeros((tx.shape[1], 10), dtype), np.zeros(10, dtype)
    errors, snapshots = [], []
    for _ in range(epochs):
        for i in range(len(tx) // batch_size):
            x, y = tx[i * batch_size:(i + 1) * batch_size], ty[i * batch_size:(i + 1) * batch_size]
            d = _softmax_grad(_softmax(x @ W + b), y)
            W, b = W - lr * (x.T @ d), b - lr * d.sum(axis=0)
        errors.append(100.0 * np.mean((vx @ W + b).argmax(axis=1) != vy))
        snapshots.append((W, b))
    return errors, snapshots


def mlp(train: tuple, valid: tuple, epochs: int, batch_size: int, n_hidden: int, lr: float,
        l2: float = 0.0001) -> list[float]:
    """mlp.test_mlp (tanh hidden layer, L1_reg=0): the validation error in % after each epoch."""
    (tx, ty), (vx, vy) = train, valid
    tx, vx = tx.astype(np.float64), vx.astype(np.float64)
    rng = np.random.RandomState(1234)  # test_mlp's rng, HiddenLayer's draw
    bound = np.sqrt(6.0 / (tx.shape[1] + n_hidden))
    Wh, bh = rng.uniform(-bound, bound, size=(tx.shape[1], n_hidden)), np.zeros(n_hidden)
    Wo, bo = np.zeros((n_hidden, 10)), np.zeros(10)
    errors = []
    for _ in range(epochs):
        for i in range(len(tx) // batch_size):
            x, y = tx[i * batch_size:(i + 1) * batch_size], ty[i * batch_size:(i + 1) * batch_size]
            h = np.tanh(x @ Wh + bh)
            d = _softmax_grad(_softmax(h @ Wo + bo), y)
            dh = (d @ Wo.T) * (1 - h ** 2)
            Wh, bh = Wh - lr * (x.T @ dh + 2 * l2 * Wh), bh - lr * dh.sum(axis=0)
            Wo, bo = Wo - lr * (h.T @ d + 2 * l2 * Wo), bo - lr * d.sum(axis=0)
        errors.append(100.0 * np.mean((np.tanh(vx @ Wh + bh) @ Wo + bo).argmax(axis=1) != vy))
    return errors


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _tied_autoencoder(x_all: np.ndarray, W: np.ndarray, epochs: int, batch_size: int, lr: float) -> list:
    """SGD on the reconstruction cross-entropy of a sigmoid autoencoder with tied weights (dA
    without corruption; cA, whose contraction term ``T.sum(J ** 2) // batch_size`` is a floor
    division, with no gradient): per epoch, per minibatch (its mean reconstruction cost, that
    floor of the hidden layer's squared Jacobian), both before its step."""
    b, b_prime = np.zeros(W.shape[1]), np.zeros(W.shape[0])
    epochs_out = []
    for _ in range(epochs):
        rows = []
        for i in range(len(x_all) // batch_size):
            x = x_all[i * batch_size:(i + 1) * batch_size]
            y = _sigmoid(x @ W + b)
            z = _sigmoid(y @ W.T + b_prime)
            jacobian = np.floor(((y * (1 - y)) ** 2).sum(axis=0) @ (W ** 2).sum(axis=0) / batch_size)
            rows.append((np.mean(-np.sum(x * np.log(z) + (1 - x) * np.log(1 - z), axis=1)), jacobian))
            dz = (z - x) / len(x)  # d cost / d (pre-sigmoid of z)
            dy = (dz @ W) * y * (1 - y)
            gW = x.T @ dy + dz.T @ y
            W, b, b_prime = W - lr * gW, b - lr * dy.sum(axis=0), b_prime - lr * dz.sum(axis=0)
        epochs_out.append(rows)
    return epochs_out


def _tied_weights(rng: np.random.RandomState, n_visible: int, n_hidden: int) -> np.ndarray:
    bound = 4 * np.sqrt(6.0 / (n_hidden + n_visible))
    return rng.uniform(-bound, bound, size=(n_visible, n_hidden))


def dA_without_corruption(train_x: np.ndarray, epochs: int, batch_size: int, lr: float = 0.1,
                          n_hidden: int = 500) -> list[float]:
    """dA.test_dA's first model (corruption 0, tied weights): the mean cost of each epoch."""
    rng = np.random.RandomState(123)
    rng.randint(2 ** 30)  # test_dA seeds its RandomStreams from the same rng first
    W = _tied_weights(rng, train_x.shape[1], n_hidden)
    epochs_out = _tied_autoencoder(train_x.astype(np.float64), W, epochs, batch_size, lr)
    return [float(np.mean([rec for rec, _ in rows])) for rows in epochs_out]


def cA_printed(train_x: np.ndarray, epochs: int, batch_size: int, lr: float = 0.01,
               n_hidden: int = 500) -> list[tuple[float, float]]:
    """cA.test_cA's two printed numbers of each epoch. It prints ``mean(c_array[0])`` and
    ``mean(sqrt(c_array[1]))`` where ``c_array`` stacks each minibatch's (reconstruction cost,
    contraction term): so the mean of the first minibatch's pair, and that of the square roots
    of the second's (the tutorial's indexing, kept as it is)."""
    W = _tied_weights(np.random.RandomState(123), train_x.shape[1], n_hidden)
    epochs_out = _tied_autoencoder(train_x.astype(np.float64), W, epochs, batch_size, lr)
    return [(float(np.mean(rows[0])), float(np.mean(np.sqrt(rows[1])))) for rows in epochs_out]


def logistic_cg(train: tuple, valid: tuple, epochs: int, batch_size: int = 600) -> list[float]:
    """logistic_cg.cg_optimization_mnist: scipy's fmin_cg on the mean of the minibatch costs and
    gradients, theta = (W flattened, b); the validation error in % its callback prints each iteration."""
    import scipy.optimize

    (tx, ty), (vx, vy) = train, valid
    tx, vx = tx.astype(np.float64), vx.astype(np.float64)
    n_in, batches = tx.shape[1], range(0, len(tx) - batch_size + 1, batch_size)

    def unpack(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return theta[:n_in * 10].reshape(n_in, 10), theta[n_in * 10:]

    def cost(theta: np.ndarray) -> float:
        W, b = unpack(theta)
        return float(np.mean([-np.mean(np.log(_softmax(tx[i:i + batch_size] @ W + b)
                                              [np.arange(batch_size), ty[i:i + batch_size]])) for i in batches]))

    def grad(theta: np.ndarray) -> np.ndarray:
        W, b = unpack(theta)
        g = np.zeros_like(theta)
        for i in batches:
            x = tx[i:i + batch_size]
            d = _softmax_grad(_softmax(x @ W + b), ty[i:i + batch_size])
            g += np.concatenate([(x.T @ d).ravel(), d.sum(axis=0)])
        return g / len(batches)

    errors: list[float] = []

    def callback(theta: np.ndarray) -> None:
        W, b = unpack(theta)
        errors.append(100.0 * np.mean((vx @ W + b).argmax(axis=1) != vy))

    scipy.optimize.fmin_cg(f=cost, x0=np.zeros((n_in + 1) * 10), fprime=grad, callback=callback, disp=0,
                           maxiter=epochs)
    return errors


def _windows(x: np.ndarray, k: int) -> np.ndarray:
    """(B, C, H, W) -> (B, C, H-k+1, W-k+1, k, k): every k x k patch."""
    return np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))


def _conv(x: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Theano's conv2d, 'valid': a true convolution (the filters flipped), batch x channels."""
    return np.tensordot(_windows(x, f.shape[2]), f[:, :, ::-1, ::-1], ([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)


def _conv_grads(x: np.ndarray, f: np.ndarray, d_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(d x, d f) of ``_conv(x, f)`` given d out."""
    k = f.shape[2]
    d_f = np.tensordot(_windows(x, k), d_out, ([0, 2, 3], [0, 2, 3])).transpose(3, 0, 1, 2)[:, :, ::-1, ::-1]
    padded = np.pad(d_out, ((0, 0), (0, 0), (k - 1, k - 1), (k - 1, k - 1)))
    return np.tensordot(_windows(padded, k), f, ([1, 4, 5], [0, 2, 3])).transpose(0, 3, 1, 2), d_f


def _pool(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2x2 max pooling (ignore_border, even sizes) and the one-hot of each window's first maximum."""
    b, c, h, w = x.shape
    win = x.reshape(b, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(b, c, h // 2, w // 2, 4)
    first = np.eye(4)[win.argmax(axis=-1)]
    return win.max(axis=-1), first


def _unpool(d: np.ndarray, first: np.ndarray) -> np.ndarray:
    b, c, h, w = d.shape
    g = (first * d[..., None]).reshape(b, c, h, w, 2, 2).transpose(0, 1, 2, 4, 3, 5)
    return g.reshape(b, c, 2 * h, 2 * w)


def _lenet_init(nkerns: list[int]) -> list[np.ndarray]:
    """evaluate_lenet5's weights: rng 23455 drawn by layer0, layer1, the hidden layer, in that order."""
    rng = np.random.RandomState(23455)
    params = []
    for shape in ((nkerns[0], 1, 5, 5), (nkerns[1], nkerns[0], 5, 5)):
        fan_in, fan_out = np.prod(shape[1:]), shape[0] * np.prod(shape[2:]) // 4
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        params += [rng.uniform(-bound, bound, size=shape), np.zeros(shape[0])]
    n_in = nkerns[1] * 16
    bound = np.sqrt(6.0 / (n_in + 500))
    return params + [rng.uniform(-bound, bound, size=(n_in, 500)), np.zeros(500), np.zeros((500, 10)), np.zeros(10)]


def _lenet_forward(params: list[np.ndarray], x: np.ndarray) -> tuple[np.ndarray, list]:
    W0, b0, W1, b1, W2, b2, W3, b3 = params
    a0_in = x.reshape(len(x), 1, 28, 28)
    p0, first0 = _pool(_conv(a0_in, W0))
    a0 = np.tanh(p0 + b0[None, :, None, None])
    p1, first1 = _pool(_conv(a0, W1))
    a1 = np.tanh(p1 + b1[None, :, None, None])
    flat = a1.reshape(len(x), -1)
    h = np.tanh(flat @ W2 + b2)
    return h @ W3 + b3, [a0_in, first0, a0, first1, a1, flat, h]


def _lenet_grads(params: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    W0, b0, W1, b1, W2, b2, W3, b3 = params
    logits, (a0_in, first0, a0, first1, a1, flat, h) = _lenet_forward(params, x)
    d = _softmax_grad(_softmax(logits), y)
    dh = (d @ W3.T) * (1 - h ** 2)
    d1 = (dh @ W2.T).reshape(a1.shape) * (1 - a1 ** 2)
    d_a0, dW1 = _conv_grads(a0, W1, _unpool(d1, first1))
    d0 = d_a0 * (1 - a0 ** 2)
    _, dW0 = _conv_grads(a0_in, W0, _unpool(d0, first0))
    return [dW0, d0.sum(axis=(0, 2, 3)), dW1, d1.sum(axis=(0, 2, 3)),
            flat.T @ dh, dh.sum(axis=0), h.T @ d, d.sum(axis=0)]


def lenet(train: tuple, valid: tuple, epochs: int, batch_size: int, nkerns: list[int],
          lr: float = 0.1) -> list[float]:
    """convolutional_mlp.evaluate_lenet5: the validation error in % after each epoch (max pooling's
    gradient goes to each window's first maximum, as symgraph's and Theano's do when there is one)."""
    (tx, ty), (vx, vy) = train, valid
    tx, vx = tx.astype(np.float64), vx.astype(np.float64)
    params, errors = _lenet_init(nkerns), []
    for _ in range(epochs):
        for i in range(len(tx) // batch_size):
            rows = slice(i * batch_size, (i + 1) * batch_size)
            grads = _lenet_grads(params, tx[rows], ty[rows])
            params = [p - lr * g for p, g in zip(params, grads)]
        errors.append(100.0 * np.mean(_lenet_forward(params, vx)[0].argmax(axis=1) != vy))
    return errors
