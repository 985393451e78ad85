"""The one error type of `datasets`.

Every function in `datasets` raises `DataError` for data a user can get
wrong; its message is one sentence about the function's own arguments (a
command line translates argument names into flag names).
"""


class DataError(ValueError):
  """Data cannot be loaded or served; the message is one sentence."""
