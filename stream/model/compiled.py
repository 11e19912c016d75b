"""The model's trees compiled to native code, for the scorer's batches.

scikit-learn walks the regressor's 200 trees one at a time, in Cython, taking the GIL back
after each tree: about 12 µs per row, half of all the scorer's own work per event. treelite
reads the fitted trees and tl2cgen turns them into C and compiles it (one ``if`` per split)
with the machine's C compiler: about 4 µs per row (``appraise bench scorer`` and
README, Performance).

The scorer compiles at start-up (about 2 s), into a temporary directory that is removed as soon
as the library is loaded: nothing compiled is ever read from disk later, and nothing from the
model directory is ever executed. Before the compiled trees are used, their predictions are
compared with scikit-learn's on probe rows (:func:`stream.model.LoadedModel.compile_trees` draws
them: every known category, an unseen one, missing values, the training range of every numeric);
any difference beyond rounding refuses them.

When there is no C compiler (or compiling fails), :func:`compile_trees` raises
:class:`CompileError` saying why, and the caller keeps scikit-learn's predict.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from stream.service.process import usable_cpus

log = logging.getLogger(__name__)

#: Environment variable naming the C compiler (the usual one); gcc when unset.
COMPILER_ENV: Final = "CC"
_DEFAULT_COMPILER: Final = "gcc"
#: Compiled and scikit-learn raw predictions (log dollars) may differ by summation order only.
_RTOL: Final = 1e-12

Matrix = npt.NDArray[np.float64]


class CompileError(RuntimeError):
    """The trees could not be compiled, or the compiled trees disagree with scikit-learn."""


def compiler() -> str:
    """The C compiler tl2cgen is given: ``$CC`` or gcc."""
    return os.environ.get(COMPILER_ENV) or _DEFAULT_COMPILER


def compile_trees(regressor: Any, probe: Matrix) -> Callable[[Matrix], Matrix]:
    """Compile a fitted HistGradientBoostingRegressor's trees; return ``matrix → raw
    predictions`` (what ``regressor.predict`` returns for the same matrix).

    ``probe``: rows in the regressor's input layout whose compiled predictions must equal
    scikit-learn's (within summation-order rounding) before the compiled trees are used.

    Raises :class:`CompileError` naming the cause (no compiler, a compile error, a mismatch).
    """
    cc = compiler()
    if shutil.which(cc) is None:
        raise CompileError(
            f"no C compiler {cc!r} on PATH (set ${COMPILER_ENV} to another one, or install gcc)"
        )
    # treelite and tl2cgen talk on stdout and stderr (from C++ too: the runtime bundled with
    # tl2cgen notes that the importer's treelite is newer); that goes to our debug log.
    chatter: list[str] = []
    try:
        with (
            tempfile.TemporaryDirectory(prefix="appraise-trees-") as workdir,
            _native_output(chatter),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            predict = _build(regressor, cc, Path(workdir) / "trees.so")
    except Exception as exc:  # treelite and tl2cgen raise their own error types
        said = "; ".join(line.strip() for line in chatter[-3:] if line.strip())
        raise CompileError(
            f"compiling the trees with {cc} failed: {exc}" + (f" ({said})" if said else "")
        ) from exc
    finally:
        for line in chatter:
            log.debug("tl2cgen: %s", line)

    expected = np.asarray(regressor.predict(probe), dtype=np.float64)
    got = predict(probe)
    if not np.allclose(got, expected, rtol=_RTOL, atol=0.0):
        worst = float(np.max(np.abs(got - expected)))
        raise CompileError(
            f"the compiled trees predict differently from scikit-learn (largest difference "
            f"{worst:.3g} on {len(probe)} probe rows); not used"
        )
    return predict


@contextlib.contextmanager
def _native_output(lines: list[str]) -> Iterator[None]:
    """Collect what the block writes to stdout and stderr, from Python (``print``) and from
    native code (file descriptors 1 and 2), into ``lines`` instead."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    printed = io.StringIO()
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            with contextlib.redirect_stdout(printed):
                yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            native = sink.read().decode("utf-8", errors="replace")
            lines.extend([*printed.getvalue().splitlines(), *native.splitlines()])


def _build(regressor: Any, cc: str, libpath: Path) -> Callable[[Matrix], Matrix]:
    # Imported here: only a scorer that compiles pays for loading them.
    import tl2cgen
    import treelite

    model = treelite.sklearn.import_model(regressor)
    cpus = usable_cpus()
    tl2cgen.export_lib(
        model, toolchain=cc, libpath=libpath, params={"parallel_comp": cpus}, nthread=cpus
    )
    # Loaded now; the directory (and the file) go when the caller's block ends.
    predictor = tl2cgen.Predictor(libpath, nthread=1)
    matrix_of = tl2cgen.DMatrix

    def predict(matrix: Matrix) -> Matrix:
        raw = predictor.predict(matrix_of(matrix, dtype="float64"))
        return np.asarray(raw, dtype=np.float64).reshape(len(matrix))

    return predict
