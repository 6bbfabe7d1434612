"""Skip Numba's defensive copies of an inlined function's IR (compile time only).

For every call site of an ``inline="always"`` function, Numba (0.68 and earlier)
runs the untyped pipeline over the callee, which yields a fresh IR, then
``InlineWorker.inline_ir`` deep-copies that IR block by block twice: once to mutate,
once to return an unmutated copy that its only caller here (the ``InlineInlinables``
pass) throws away. Each block's copy also copies the whole variable scope, so the
copies grow with blocks x variables: 11-13 s of a cold compile of
:func:`.step.advance`, whose callees inline further helpers (numba/numba#8989, open;
the same two copies are removed in NVIDIA/numba-cuda#689).

:func:`install` makes ``inline_function`` run ``inline_ir`` with copies that return
their argument. That is safe because the IR it is handed was just built for this call
site and nothing else holds it; the IR after inlining is the same, so is the machine
code (the golden-baseline test and the bit-identity checks of the kernels pass
unchanged). It is applied only to the Numba releases it was checked against: any other
release keeps Numba's own path (slower to compile, same kernels). Compiles run under
Numba's global compiler lock, so swapping the module's ``copy`` for the duration of one
``inline_ir`` call cannot race another thread's compile.
"""

from __future__ import annotations

import copy

import numba
from numba.core import inline_closurecall as _icc

CHECKED = ((0, 68), (0, 69))  # [first, last): the Numba releases this was checked on


class _NoCopy:
    """Stands in for the ``copy`` module inside ``inline_ir``: deepcopy returns its argument."""

    @staticmethod
    def deepcopy(x, memo=None):
        return x

    def __getattr__(self, name):  # anything else: the real module
        return getattr(copy, name)


def _inline_function(self, caller_ir, block, i, function, arg_typs=None):
    callee_ir = self.run_untyped_passes(function)  # fresh: no other reference to it
    _icc.copy = _NoCopy()
    try:
        return self.inline_ir(
            caller_ir, block, i, callee_ir, function.__code__.co_freevars, arg_typs=arg_typs
        )
    finally:
        _icc.copy = copy


def applies(version: str = numba.__version__) -> bool:
    """Whether ``version`` is a Numba release :func:`install` was checked against."""
    try:
        v = tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        return False
    return CHECKED[0] <= v < CHECKED[1]


def install() -> bool:
    """Replace ``InlineWorker.inline_function`` where :func:`applies`; returns whether it did."""
    if not applies():
        return False
    _icc.InlineWorker.inline_function = _inline_function
    return True
