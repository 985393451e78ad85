"""Deprecated: the loop's callbacks are `trainer.callbacks`.

`trainer.actions.Action` is the old name of `trainer.callbacks.Callback`;
the built-ins kept their names there.
"""

import warnings

from trainer import callbacks as _callbacks

_RENAMED = {"Action": "Callback"}


def __getattr__(name: str):
  """`Action` and the built-ins, from `trainer.callbacks`, with a warning."""
  new = _RENAMED.get(name, name)
  if name.startswith("_") or not hasattr(_callbacks, new):
    raise AttributeError(f"module 'trainer.actions' has no attribute {name!r}")
  warnings.warn(f"trainer.actions.{name} is now trainer.callbacks.{new}.",
                DeprecationWarning, stacklevel=2)
  return getattr(_callbacks, new)
