"""Tiny synthetic stand-ins for the tutorials' datasets, written in the tutorials' own file formats.

``mnist.pkl.gz`` is what ``logistic_sgd.load_data`` reads: a gzipped pickle of
``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))``, rows of 28x28 = 784 pixels in
[0, 1] (the tutorials hard-code 28x28) and int64 labels 0..9. Each class is a fixed random
pattern of bright pixels, and each row is its class's pattern with a fraction of pixels flipped,
so a linear model learns it in a few steps and an RBM has structure to model.

``*.mid`` piano rolls for the RNN-RBM (rnnrbm.py reads MIDI files through the ``midi`` package
the tutorial's page has users download): ``midi_module()`` is a stand-in ``midi.utils`` whose
``midiread`` loads the roll ``write_midi`` saved (a .npy file under the .mid name; notes that
climb in steps of 1, 2 and 3 pitches, wrapping around) and whose ``midiwrite`` saves one.

``imdb.pkl`` is what ``imdb.load_data`` reads: two pickles in one file, the train set then the
test set, each ``(list of word-index lists, list of 0/1 labels)``. A review's label is whether
its words come mostly from the "positive" half of the vocabulary.
"""
from __future__ import annotations

import functools
import gzip
import os
import pickle
import types

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


def piano_roll(steps: int, pitches: int, phase: int) -> np.ndarray:
    """A (steps, pitches) 0/1 roll: three voices climbing 1, 2 and 3 pitches a step, wrapping."""
    roll = np.zeros((steps, pitches))
    t = np.arange(steps)
    for k in (1, 2, 3):
        roll[t, (phase + k * t) % pitches] = 1.0
    return roll


def write_midi(directory: str, n_files: int = 2, steps: int = 40, pitches: int = 20) -> list[str]:
    """``n_files`` piano rolls saved under .mid names (read back by ``midi_module().utils.midiread``)."""
    paths = []
    for k in range(n_files):
        path = os.path.join(directory, f"tune{k}.mid")
        with open(path, "wb") as f:
            np.save(f, piano_roll(steps, pitches, phase=3 * k))
        paths.append(path)
    return paths


def midi_module() -> types.ModuleType:
    """A stand-in for the ``midi`` package (``midi.utils.midiread``/``midiwrite``) over ``write_midi``'s files."""
    class Read:
        def __init__(self, roll: np.ndarray):
            self.piano_roll = roll

    def midiread(filename: str, r: tuple = (21, 109), dt: float = 0.2) -> Read:
        with open(filename, "rb") as f:
            roll = np.load(f)
        if roll.shape[1] != r[1] - r[0]:
            raise ValueError(f"{filename} has {roll.shape[1]} pitches, the range {r} asks for {r[1] - r[0]}")
        return Read(roll)

    def midiwrite(filename: str, roll: np.ndarray, r: tuple = (21, 109), dt: float = 0.2) -> None:
        with open(filename, "wb") as f:
            np.save(f, np.asarray(roll))

    midi, utils = types.ModuleType("midi"), types.ModuleType("midi.utils")
    utils.midiread, utils.midiwrite = midiread, midiwrite  # type: ignore[attr-defined]
    midi.utils = utils  # type: ignore[attr-defined]
    return midi


def slu_like(n: int = 40, vocabulary: int = 30, classes: int = 5, seed: int = 1) -> tuple[list, list]:
    """Sentences of 3 to 8 word indices (int32) for rnnslu's Elman network, and their labels: each
    word's index modulo ``classes`` (the word at the centre of its context window decides it)."""
    rng = np.random.RandomState(seed)
    sentences = [rng.randint(0, vocabulary, size=rng.randint(3, 9)).astype("int32") for _ in range(n)]
    return sentences, [(s % classes).astype("int32") for s in sentences]
