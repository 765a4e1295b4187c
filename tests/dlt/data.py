"""Tiny synthetic stand-ins for the tutorials' datasets, written in the tutorials' own file formats.

``mnist.pkl.gz`` is what ``logistic_sgd.load_data`` reads: a gzipped pickle of
``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))``, rows of 28x28 = 784 pixels in
[0, 1] (the tutorials hard-code 28x28) and int64 labels 0..9. Each class is a fixed random
pattern of bright pixels, and each row is its class's pattern with a fraction of pixels flipped,
so a linear model learns it in a few steps and an RBM has structure to model.

``imdb.pkl`` is what ``imdb.load_data`` reads: two pickles in one file, the train set then the
test set, each ``(list of word-index lists, list of 0/1 labels)``. A review's label is whether
its words come mostly from the "positive" half of the vocabulary.
"""
from __future__ import annotations

import functools
import gzip
import os
import pickle

import numpy as np

SIDE = 28
N_CLASSES = 10


def mnist_like(rows: tuple[int, int, int] = (200, 100, 100), seed: int = 0, flip: float = 0.3) -> tuple:
    """``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))`` with ``rows`` rows each."""
    rng = np.random.RandomState(seed)
    # a background shared by every class, plus a few pixels of each class's own
    patterns = np.repeat(rng.uniform(size=(1, SIDE, SIDE)) < 0.15, N_CLASSES, axis=0).astype(np.float32)
    for c in range(N_CLASSES):  # a 5x8 block: a 2x5 grid of places, one per class
        top, left = 4 + 12 * (c // 5), 1 + 5 * (c % 5)
        patterns[c, top:top + 8, left:left + 5] = 1.0
    patterns = patterns.reshape(N_CLASSES, SIDE * SIDE)
    sets = []
    for n in rows:
        y = np.arange(n) % N_CLASSES
        rng.shuffle(y)
        flips = rng.uniform(size=(n, SIDE * SIDE)) < flip
        x = np.abs(patterns[y] - flips).astype(np.float32)
        sets.append((x, y.astype(np.int64)))
    return tuple(sets)


@functools.lru_cache(maxsize=4)
def _mnist_file(rows: tuple[int, int, int], seed: int) -> bytes:
    return gzip.compress(pickle.dumps(mnist_like(rows, seed), protocol=2), compresslevel=1)


def write_mnist(directory: str, rows: tuple[int, int, int] = (200, 100, 100), seed: int = 0) -> str:
    """Write ``mnist.pkl.gz`` into ``directory``; return its path."""
    path = os.path.join(directory, "mnist.pkl.gz")
    with open(path, "wb") as f:
        f.write(_mnist_file(rows, seed))
    return path


def imdb_like(n_train: int = 100, n_test: int = 40, n_words: int = 50, seed: int = 0) -> tuple:
    """``(train_set, test_set)``, each ``(sequences, labels)`` as imdb.pkl holds them."""
    rng = np.random.RandomState(seed)

    def reviews(n: int) -> tuple[list[list[int]], list[int]]:
        labels = [int(v) for v in rng.randint(0, 2, size=n)]
        half = n_words // 2
        seqs = []
        for label in labels:
            length = int(rng.randint(3, 12))
            own = rng.randint(2 + label * (half - 2), half + label * half, size=length)
            noise = rng.randint(2, n_words, size=length)
            seqs.append([int(w) for w in np.where(rng.uniform(size=length) < 0.8, own, noise)])
        return seqs, labels

    return reviews(n_train), reviews(n_test)


def write_imdb(directory: str, **kw: int) -> str:
    """Write ``imdb.pkl`` (train set, then test set, two pickles) into ``directory``; return its path."""
    path = os.path.join(directory, "imdb.pkl")
    train, test = imdb_like(**kw)
    with open(path, "wb") as f:
        pickle.dump(train, f, protocol=2)
        pickle.dump(test, f, protocol=2)
    return path
