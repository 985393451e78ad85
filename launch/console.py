"""What a run prints on stderr: its own lines in one voice, TF's kept quiet.

- The harness's log lines are plain sentences on a terminal (`warning: ...`
  and `error: ...` for the rest), as `errors.fail` prints its one line;
  elsewhere (log files, `launch.local`, Slurm) each line starts with the
  date and time. They go through `trainer.progress.TERMINAL`, so a line
  never lands on the progress bar.
- TensorFlow's Python INFO lines are dropped; its warnings and errors stay
  (in its own format: they are TensorFlow's, not the run's).
- TensorFlow's C++ start-up lines (a notice about absl's log, oneDNN, "could
  not find cuda drivers", and on a machine without an NVIDIA driver an
  error-level "failed call to cuInit") go straight to file descriptor 2
  before TF_CPP_MIN_LOG_LEVEL applies. `import_tensorflow` filters that
  descriptor while TensorFlow loads and finds its devices: INFO and WARNING
  lines are dropped, errors are kept (the cuInit one too when this machine
  has an NVIDIA device, where it is a real error).

`verbose=True` (`--verbose`) shows everything.
"""

import contextlib
import glob
import logging as pylogging
import os
import re
import sys
import threading
import time

from absl import logging

_PACKAGES = tuple(
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                 package) + os.sep for package in ("launch", "trainer",
                                                   "datasets"))


class _Filter(pylogging.Filter):
  """Warnings from everywhere; INFO lines only from the harness."""

  def __init__(self):
    super().__init__()
    self.verbose = False

  def filter(self, record: pylogging.LogRecord) -> bool:
    return (self.verbose or record.levelno >= pylogging.WARNING
            or record.pathname.startswith(_PACKAGES))


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


def configure_logging(verbose: bool = False) -> None:
  """The harness's lines on stderr in one voice; TF's INFO lines off.

  Idempotent. absl's logger stops passing records on to the root logger
  (absl's own handler there would print them a second time).
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
  logger = logging.get_absl_logger()
  handler = next((h for h in logger.handlers if isinstance(h, _Handler)),
                 None)
  if handler is None:
    handler = _Handler()
    handler.setFormatter(_Formatter())
    handler.addFilter(_Filter())
    logger.addHandler(handler)
    logger.propagate = False
  for item in handler.filters:
    if isinstance(item, _Filter):
      item.verbose = verbose
  _quiet_tensorflow_logger(verbose)


def _quiet_tensorflow_logger(verbose: bool) -> None:
  # TensorFlow's Python logger ("tensorflow", not absl's) logs INFO lines
  # of its own (the strategy's devices, saver sharding, ...) in its format.
  pylogging.getLogger("tensorflow").setLevel(
      pylogging.INFO if verbose else pylogging.WARNING)


# A C++ log line: severity, date (0000 before absl's log is set up), time,
# thread, file:line].
_NATIVE_LINE = re.compile(rb"^([IWEF])\d{4} [\d:. ]+\s\d+ ([\w./-]+):\d+\] ")
_PREINIT_NOTICE = b"WARNING: All log messages before absl::InitializeLog()"
_CONTINUATION = b"To enable the following instructions"


def _has_nvidia_device() -> bool:
  return bool(glob.glob("/dev/nvidia[0-9]*")) or os.path.exists(
      "/dev/nvidiactl")


def _keep(line: bytes, previous_dropped: bool, has_gpu: bool) -> bool:
  """Whether a start-up line of fd 2 is worth a person's attention."""
  if line.startswith(_PREINIT_NOTICE):
    return False
  if previous_dropped and line.startswith(_CONTINUATION):
    return False
  match = _NATIVE_LINE.match(line)
  if not match:
    return True  # Not a C++ log line: Python's own output.
  if match.group(1) in b"IW":
    return False
  return has_gpu or b"cuInit" not in line


@contextlib.contextmanager
def quiet_native_startup():
  """Filters file descriptor 2 (see the module docstring) in this block."""
  try:
    sys.stderr.flush()
    saved = os.dup(2)
  except (AttributeError, OSError, ValueError):
    yield  # No usable fd 2 (an embedded interpreter): nothing to filter.
    return
  reader, writer = os.pipe()
  os.dup2(writer, 2)
  os.close(writer)
  has_gpu = _has_nvidia_device()

  def pump():
    pending, dropped = b"", False
    with os.fdopen(reader, "rb", buffering=0) as source:
      while chunk := source.read(65536):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
          keep = _keep(line, dropped, has_gpu)
          dropped = not keep
          if keep:
            os.write(saved, line + b"\n")
      if pending:
        os.write(saved, pending)

  thread = threading.Thread(target=pump, name="native-stderr", daemon=True)
  thread.start()
  try:
    yield
  finally:
    try:
      sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
      pass
    os.dup2(saved, 2)  # Closes the pipe's last writer: the pump ends.
    thread.join(timeout=5)
    os.close(saved)


def import_tensorflow(verbose: bool = False):
  """Imports TensorFlow and finds its devices, quietly unless `verbose`.

  A process that imported TensorFlow already (a notebook, a user's
  script) has printed its start-up lines; nothing changes then.
  """
  if "tensorflow" in sys.modules or verbose:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    _quiet_tensorflow_logger(verbose)
    return tf
  with quiet_native_startup():
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    tf.config.list_physical_devices()
  _quiet_tensorflow_logger(verbose)  # Its import may have set a level.
  return tf
