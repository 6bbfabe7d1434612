"""The Numba set-up of otfr_vec.kernels.jit: inlining without Numba's IR copies."""

import copy

import numba
import numpy as np
import pytest
from numba import njit
from numba.core import inline_closurecall as icc

from otfr_vec.kernels import inline_copies
from otfr_vec.kernels.jit import inline_kernel


@inline_kernel
def _leaf(a, i, x):
    if x > a[i]:
        a[i] = x
        return 1
    return 0


@inline_kernel
def _mid(a, i, x):  # inlines _leaf twice: the nested case whose copies grew quadratically
    return _leaf(a, i, x) + _leaf(a, i + 1, 2.0 * x)


@njit(_nrt=False)  # not cached: every test run goes through the inliner
def _top(a, xs, out):
    for k in range(xs.size):
        out[k] = _mid(a, k % 3, xs[k]) + _mid(a, 0, -xs[k])  # two sites of the same callee


def _top_py(a, xs, out):
    for k in range(xs.size):
        for i, x in ((k % 3, xs[k]), (0, -xs[k])):
            n = 0
            for j, y in ((i, x), (i + 1, 2.0 * x)):
                if y > a[j]:
                    a[j] = y
                    n += 1
            out[k] += n


@pytest.mark.parametrize(
    "version, ok",
    [("0.68.1", True), ("0.68.0rc1", True), ("0.69.0", False), ("0.67.0", False), ("dev", False)],
)
def test_applies_only_to_checked_releases(version, ok):
    assert inline_copies.applies(version) is ok


def test_installed_where_it_applies():
    ours = icc.InlineWorker.inline_function is inline_copies._inline_function
    assert ours is inline_copies.applies(numba.__version__)


def test_inlined_kernel_matches_python_and_restores_copy():
    rng = np.random.default_rng(3)
    xs = rng.normal(size=50)
    a, a_py = np.full(4, -np.inf), np.full(4, -np.inf)
    out, out_py = np.zeros(50, np.int64), np.zeros(50, np.int64)
    _top(a, xs, out)
    _top_py(a_py, xs, out_py)
    np.testing.assert_array_equal(out, out_py)
    np.testing.assert_array_equal(a, a_py)
    assert icc.copy is copy  # the module Numba's inliner uses is put back


def test_copy_restored_when_inlining_fails(monkeypatch):
    seen = []

    def boom(self, *args, **kwargs):
        blocks = [args[3]]
        seen.append((icc.copy.deepcopy(blocks) is blocks, args))  # no copy inside inline_ir
        raise RuntimeError("inline_ir failed")

    monkeypatch.setattr(icc.InlineWorker, "run_untyped_passes", lambda self, f: "fresh IR")
    monkeypatch.setattr(icc.InlineWorker, "inline_ir", boom)
    with pytest.raises(RuntimeError, match="inline_ir failed"):
        inline_copies._inline_function(icc.InlineWorker(), "caller", "block", 0, _top_py)
    assert seen == [(True, ("caller", "block", 0, "fresh IR", ()))]
    assert icc.copy is copy
