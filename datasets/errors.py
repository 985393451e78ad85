"""The one error type of `datasets`.

Every function in `datasets` raises `DataError` for data a user can get
wrong; its message is one sentence about the function's own arguments,
each written `argument(name)`. `str()` names them as Python does
(`label_column`); a caller that calls them otherwise (a command line's
flags) re-spells them with `spelled`.
"""

from collections.abc import Callable

_MARK = "\x1f"  # Marks an argument's name; no user text holds it.


def argument(name: str) -> str:
  """An argument's name inside a `DataError` message."""
  return f"{_MARK}{name}{_MARK}"


class DataError(ValueError):
  """Data cannot be loaded or served; the message is one sentence.

  Attributes:
    arguments: The arguments the message names, in order.
  """

  def __init__(self, message: str):
    self._template = message
    self.arguments = tuple(message.split(_MARK)[1::2])
    super().__init__(self.spelled(lambda name: name))

  def __str__(self) -> str:
    return self.spelled(lambda name: name)

  def spelled(self, spell: Callable[[str], str]) -> str:
    """The message with each argument's name written `spell(name)`."""
    parts = self._template.split(_MARK)
    parts[1::2] = [spell(name) for name in parts[1::2]]
    return "".join(parts)
