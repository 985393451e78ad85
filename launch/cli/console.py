"""What a run prints on stderr: its own lines in one voice, TF's kept quiet.

- The harness's log lines are plain sentences on a terminal (`warning: ...`
  and `error: ...` for the rest), as `errors.fail` prints its one line;
  elsewhere (log files, `launch.local`, Slurm) each line starts with the
  date and time. They go through `trainer.progress.TERMINAL`, so a line
  never lands on the progress bar.
- TensorFlow's Python INFO lines are dropped; its warnings and errors stay.
  In a harness command (`owns_stderr`) they and Python's `warnings` are
  written like the run's own lines; under `fit` they keep their handlers.
  The harness's lines reach only this module's handler on absl's logger.
- TensorFlow's C++ start-up lines (a notice about absl's log, oneDNN, "could
  not find cuda drivers", and on a machine without an NVIDIA driver an
  error-level "failed call to cuInit") go straight to file descriptor 2
  before TF_CPP_MIN_LOG_LEVEL applies. `import_tensorflow` filters that
  descriptor while TensorFlow loads and finds its devices
  (`launch/cli/stderr_filter.py` says which lines go): errors are kept, and the
  cuInit one too on a machine with an NVIDIA device, where it is real.

`verbose=True` (`--verbose`) shows everything.
"""

import contextlib
import glob
import logging as pylogging
import os
import subprocess
import sys
import time

from absl import logging

from launch.cli import stderr_filter

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))  # launch/cli/console.py -> the repository.
_PACKAGES = tuple(
    os.path.join(_REPO_ROOT, package) + os.sep for package in ("launch", "trainer",
                                                   "datasets"))


class _Filter(pylogging.Filter):
  """Warnings from everywhere; INFO lines only from the harness."""

  def __init__(self):
    super().__init__()
    self.verbose = False

  def filter(self, record: pylogging.LogRecord) -> bool:
    return (self.verbose or record.levelno >= pylogging.WARNING
            or record.pathname.startswith(_PACKAGES))


_SHARED_FILTER = _Filter()


class _Formatter(pylogging.Formatter):
  """`message`, `warning: message`; the time first when not a terminal."""

  def format(self, record: pylogging.LogRecord) -> str:
    text = record.getMessage()
    if record.exc_info:
      text += "\n" + self.formatException(record.exc_info)
    if record.levelno >= pylogging.ERROR:
      text = "error: " + text
    elif record.levelno >= pylogging.WARNING:
      text = "warning: " + text
    if not _is_terminal(sys.stderr):
      text = time.strftime("%Y-%m-%d %H:%M:%S ",
                           time.localtime(record.created)) + text
    return text


class _Handler(pylogging.Handler):
  """Writes above the progress bar, to the current `sys.stderr`."""

  def emit(self, record: pylogging.LogRecord) -> None:
    from trainer import progress  # pylint: disable=import-outside-toplevel
    try:
      progress.TERMINAL.write_line(sys.stderr, self.format(record))
    except Exception:  # pylint: disable=broad-except
      self.handleError(record)


def _is_terminal(stream) -> bool:
  try:
    return stream.isatty()
  except (AttributeError, ValueError):
    return False


_SET_LEVEL = None  # The TF_CPP_MIN_LOG_LEVEL this module set, if any.


def configure_logging(verbose: bool = False, *,
                      owns_stderr: bool = False) -> None:
  """The harness's lines on stderr in one voice; TF's INFO lines off.

  Idempotent.

  Args:
    verbose: Also TensorFlow's INFO lines (and its C++ start-up lines).
    owns_stderr: The process is a harness command (`python -m launch`):
      TensorFlow's Python warnings and Python's `warnings` are written the
      same way, above the progress bar. Under `fit` they keep their own
      handlers.

  absl's records (the harness's lines) stop at this handler: a handler on
  the root logger (absl's own under `app.run`, or one a library's import
  set up) would print each line a second time. Add a handler to the
  "absl" logger to receive them too.
  """
  # Read by TensorFlow's C++ logging when it loads (if not loaded yet).
  global _SET_LEVEL
  if not verbose and "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = _SET_LEVEL = "2"
  elif verbose and _SET_LEVEL and os.environ.get(
      "TF_CPP_MIN_LOG_LEVEL") == _SET_LEVEL:
    del os.environ["TF_CPP_MIN_LOG_LEVEL"]
    _SET_LEVEL = None
  logging.set_verbosity(logging.INFO)
  absl_logger = logging.get_absl_logger()
  handler = _handler_of(absl_logger)
  absl_logger.propagate = False
  for item in handler.filters:
    if isinstance(item, _Filter):
      item.verbose = verbose
  if owns_stderr:
    pylogging.captureWarnings(True)
    for name in ("tensorflow", "py.warnings"):
      logger = pylogging.getLogger(name)
      _handler_of(logger)
      logger.propagate = False
  _quiet_tensorflow_logger(verbose)


def _handler_of(logger: pylogging.Logger) -> "_Handler":
  """The logger's `_Handler`, added if it has none."""
  for handler in logger.handlers:
    if isinstance(handler, _Handler):
      return handler
  handler = _Handler()
  handler.setFormatter(_Formatter())
  handler.addFilter(_SHARED_FILTER)
  logger.addHandler(handler)
  return handler


def _quiet_tensorflow_logger(verbose: bool) -> None:
  # TensorFlow's Python logger ("tensorflow", not absl's) logs INFO lines
  # of its own (the strategy's devices, saver sharding, ...) in its format.
  pylogging.getLogger("tensorflow").setLevel(
      pylogging.INFO if verbose else pylogging.WARNING)


def _has_nvidia_device() -> bool:
  return bool(glob.glob("/dev/nvidia[0-9]*")) or os.path.exists(
      "/dev/nvidiactl")


def _filtering_wanted() -> bool:
  # TensorFlow's verbose logging can write more than a pipe holds while
  # the filtered call holds the GIL; such a user wants every line anyway.
  return not (os.environ.get("TF_CPP_MAX_VLOG_LEVEL")
              or os.environ.get("TF_CPP_VMODULE"))


@contextlib.contextmanager
def quiet_native_startup():
  """Filters file descriptor 2 in this block (see the module docstring).

  fd 2 goes to a child process (`launch/cli/stderr_filter.py`) that writes the
  kept lines to the real stderr; the block's end restores fd 2 and waits
  for the child to write what it read.
  """
  try:
    sys.stderr.flush()
    saved = os.dup(2)
  except (AttributeError, OSError, ValueError):
    yield  # No usable fd 2 (an embedded interpreter): nothing to filter.
    return
  try:
    child = subprocess.Popen(
        [sys.executable, "-S", "-I", stderr_filter.__file__,
         "gpu" if _has_nvidia_device() else "none"],
        stdin=subprocess.PIPE, stdout=saved, stderr=saved, close_fds=True)
  except OSError:
    os.close(saved)
    yield
    return
  os.dup2(child.stdin.fileno(), 2)
  try:
    yield
  finally:
    try:
      sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
      pass
    os.dup2(saved, 2)
    os.close(saved)
    child.stdin.close()  # With fd 2 restored, the child sees the end.
    try:
      child.wait(timeout=10)
    except subprocess.TimeoutExpired:
      pass  # fd 2 was inherited by a process still running; let it be.


def import_tensorflow(verbose: bool = False):
  """Imports TensorFlow and finds its devices, quietly unless `verbose`.

  A process that imported TensorFlow already (a notebook, a user's
  script) has printed its start-up lines; nothing changes then.
  """
  if "tensorflow" in sys.modules or verbose or not _filtering_wanted():
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    _quiet_tensorflow_logger(verbose)
    return tf
  with quiet_native_startup():
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    tf.config.list_physical_devices()
  _quiet_tensorflow_logger(verbose)  # Its import may have set a level.
  return tf
