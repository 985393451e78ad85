"""Every directory a run will write, checked before anything is written.

model_dir and its checkpoints/, best_checkpoint/, summaries/, export/ and
logs/, and the heartbeat file's directory. A directory that exists is
tested by creating and removing a file in it: root ignores permission bits,
and only a real write sees a read-only mount, an immutable directory or a
network file system's own rules. One that does not exist yet is created
by the run, so its nearest existing parent must allow that (`os.access`,
which reports a read-only file system and an immutable directory to root
too); nothing is created outside model_dir. A file system with less than
`MIN_FREE_BYTES` free is refused as well: the first save would fail.
"""

import errno
import os
import tempfile

from launch.errors import ConfigError, flag
from launch.options.config import RunConfig
from trainer import layout

MIN_FREE_BYTES = 1 << 20

_CAUSES = {errno.EROFS: "is on a read-only file system",
           errno.EPERM: "does not allow writing (an immutable attribute?)",
           errno.EACCES: "does not allow this user to write",
           errno.ENOSPC: "has no space left",
           errno.EDQUOT: "is over its disk quota"}


def run_directories(config: RunConfig) -> list[tuple[str, str]]:
  """(option, directory) of every directory the run writes."""
  paths = layout.ModelDir(os.path.abspath(config.train.model_dir))
  found = [("model_dir", path) for path in (
      paths.root, paths.checkpoints, paths.summaries,
      paths.split_summaries("train"), paths.split_summaries("eval"),
      paths.split_summaries("evaluate"), paths.export, paths.logs)]
  if config.train.keep_best_checkpoint:
    found.append(("model_dir", paths.best_checkpoint))
  if config.heartbeat_file:
    found.append(("heartbeat_file",
                  os.path.dirname(os.path.abspath(config.heartbeat_file))))
  return found


def _nearest_existing(path: str) -> str:
  while not os.path.exists(path):
    path = os.path.dirname(path)
  return path


def _probe(directory: str) -> OSError | None:
  """Creates and removes a file in `directory`; the error if that fails."""
  try:
    handle, probe = tempfile.mkstemp(prefix=".tfharness-write-test-",
                                     dir=directory)
  except OSError as error:
    return error
  os.close(handle)
  os.remove(probe)
  return None


def _refuse(option: str, given: str, directory: str, cause: str) -> None:
  shown = "it" if directory == os.path.abspath(given) else directory
  raise ConfigError(f"{flag(option)}={given} is not writable: {shown}"
                    f" {cause}; make it writable or choose another"
                    f" {flag(option)}.")


def check_writable(config: RunConfig) -> None:
  """Refuses a run that could not write one of its directories.

  Raises:
    ConfigError: Naming the option, the directory and why (read-only,
      immutable, permission, full).
  """
  root = os.path.abspath(config.train.model_dir)
  checked = set()
  for option, directory in run_directories(config):
    given = (config.train.model_dir if option == "model_dir"
             else config.heartbeat_file)
    existing = _nearest_existing(directory)
    if existing not in checked:
      checked.add(existing)
      check_directory(option, given, directory, model_dir=root)


def check_directory(option: str, given: str, directory: str, *,
                    model_dir: str) -> None:
  """Refuses `directory` (of `option`, set to `given`) if unwritable.

  Raises:
    ConfigError: Naming the option, the directory and why.
  """
  existing = _nearest_existing(os.path.abspath(directory))
  if not os.path.isdir(existing):
    _refuse(option, given, existing, "is a file, not a directory")
  if not os.access(existing, os.W_OK | os.X_OK):
    cause = (_CAUSES[errno.EROFS] if _is_read_only(existing)
             else _CAUSES[errno.EACCES])
    _refuse(option, given, existing, cause)
  inside = existing == model_dir or existing.startswith(model_dir + os.sep)
  error = _probe(existing) if inside else None
  if error is not None:
    _refuse(option, given, existing,
            _CAUSES.get(error.errno, f"cannot be written ({error.strerror})"))
  _check_space(option, given, existing)


def check_scratch() -> None:
  """A non-chief worker's scratch directory for its part of every save.

  Raises:
    ConfigError: If the temporary directory (`$TMPDIR`, else /tmp) cannot
      be written.
  """
  try:
    directory = tempfile.gettempdir()
  except FileNotFoundError as error:  # No candidate was writable.
    raise ConfigError(f"this worker has no writable temporary directory for"
                      f" its part of each checkpoint ({error}); set TMPDIR"
                      " to a writable directory.") from None
  error = _probe(directory)
  if error is not None:
    raise ConfigError(
        f"this worker's scratch directory {directory} (the temporary"
        " directory, where non-chief workers write their part of each"
        f" checkpoint) is not writable ({error.strerror}); set TMPDIR to a"
        " writable directory.")


def _is_read_only(directory: str) -> bool:
  try:
    return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
  except OSError:
    return False


def _check_space(option: str, given: str, directory: str) -> None:
  try:
    stats = os.statvfs(directory)
  except OSError:
    return
  free = stats.f_bavail * stats.f_frsize
  if stats.f_blocks and free < MIN_FREE_BYTES:
    raise ConfigError(f"{flag(option)}={given} has {free // 1024} KiB free on"
                      f" its file system ({directory}); free space or choose"
                      f" another {flag(option)}.")
