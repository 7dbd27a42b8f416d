"""The engine boundary of ``GLMM.fit``: an unexpected exception from inside an engine
becomes an :class:`~bayesglmm.errors.InferenceError` naming the method and where it came from."""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bayesglmm.errors import BayesGLMMError, InferenceError

__all__ = ["engine_boundary"]

_HERE = Path(__file__).resolve()
_PACKAGE = _HERE.parents[1]  # bayesglmm/


def engine_boundary[F: Callable[..., Any]](fit: F) -> F:
    """Decorate ``GLMM.fit``: an exception from inside an engine or a dependency that is not
    a :class:`BayesGLMMError` (a singular sparse factor in SciPy, a shape error in NumPy)
    becomes an :class:`InferenceError` naming the method, the error and where in bayesglmm it
    came from, with the original chained as its cause.  Interrupts pass through.
    """

    @functools.wraps(fit)
    def wrapper(self: Any, method: str = "nuts", **kwargs: Any) -> Any:
        try:
            return fit(self, method, **kwargs)
        except BayesGLMMError:
            raise
        except Exception as exc:  # noqa: BLE001 - the boundary: re-raised as ours, chained
            where = ""
            for frame in reversed(traceback.extract_tb(exc.__traceback__)):
                path = Path(frame.filename).resolve()
                if path.is_relative_to(_PACKAGE) and path != _HERE:
                    where = f" (in bayesglmm/{path.relative_to(_PACKAGE)}:{frame.lineno})"
                    break
            text = str(exc).strip().splitlines()
            raise InferenceError(
                f"method={method!r} failed{where}: {type(exc).__name__}: "
                f"{text[0] if text else ''}; the data or model may be degenerate (separation, "
                "a singular design, extreme scales); if not, please report it"
            ) from exc

    return wrapper  # type: ignore[return-value]
