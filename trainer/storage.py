"""Storage faults (no space, read-only, gone) as one sentence, not a traceback.

A full disk, a directory that turned read-only or one removed during the run
reach the loop as `OSError`s (metrics.jsonl, the export's metadata) or as
TensorFlow errors (`SaveV2`, the event writers) whose text holds the path.
`describe` turns either into a `StorageError` that names the path, the cause
and the fix; errors about other paths (the data) are left alone.

Also the non-chief workers' scratch directories: each holds a file locked
while its save runs, so a later worker removes the ones whose holder died
(the kernel releases the lock of a killed process).
"""

import contextlib
import errno
import fcntl
import os
import re
import shutil
import tempfile
import time

from absl import logging

SCRATCH_PREFIX = "tfharness-worker-ckpt-"
_LOCK_NAME = ".lock"
# A scratch directory without a lock file is stale after this long (it is
# locked within microseconds of its creation).
_UNLOCKED_STALE_SECONDS = 60.0

NO_SPACE = "no space is left on its device"
READ_ONLY = "its file system is read-only"
GONE = "it was removed during the run"
DENIED = "permission is denied"

_ERRNO_CAUSES = {errno.ENOSPC: NO_SPACE, errno.EDQUOT: NO_SPACE,
                 errno.EROFS: READ_ONLY, errno.ENOENT: GONE,
                 errno.EACCES: DENIED, errno.EPERM: DENIED}
# TensorFlow's file system errors keep strerror's text, after the path.
_TEXT_CAUSES = (("No space left on device", NO_SPACE),
                ("Disk quota exceeded", NO_SPACE),
                ("Read-only file system", READ_ONLY),
                ("No such file or directory", GONE),
                ("Permission denied", DENIED))
_FIXES = {
    NO_SPACE: "free space there (or move model_dir to a larger disk), then"
              " rerun the same command to resume from the last complete"
              " checkpoint",
    READ_ONLY: "make it writable again, then rerun the same command to"
               " resume from the last complete checkpoint",
    GONE: "restore it (or start over in a new model_dir), then rerun the"
          " same command",
    DENIED: "give this user write access, then rerun the same command to"
            " resume from the last complete checkpoint",
}


class StorageError(RuntimeError):
  """The run cannot write `path`: `cause` is no space, read-only or gone.

  Its message is one sentence naming the path, the cause and the fix.
  """

  def __init__(self, path: str, cause: str):
    self.path = path
    self.cause = cause
    super().__init__(f"cannot write {path}: {cause}; {_FIXES[cause]}.")


def _is_under(path: str, roots) -> bool:
  path = os.path.abspath(path)
  for root in roots:
    root = os.path.abspath(root)
    if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
      return True
  return False


def _chain(error: BaseException):
  """`error` and the errors it was raised from or during."""
  seen = []
  while error is not None and error not in seen:
    seen.append(error)
    error = error.__cause__ or error.__context__
  return seen


def _shown(path: str, cause: str) -> str:
  """What to name: the removed directory, or the file without TF's temps."""
  if cause == GONE:
    return _nearest_missing(path)
  parts = os.path.abspath(path).split(os.sep)
  for index, part in enumerate(parts):
    if part.startswith(".export-"):  # The export's staging directory.
      return os.sep.join([*parts[:index], "export"])
    # A checkpoint's ckpt-N_temp/..., a file's .tempstate123 staging name.
    if "_temp" in part or "tempstate" in part:
      return os.sep.join(parts[:index]) or os.sep
  return path[:-len(".tmp")] if path.endswith(".tmp") else path


def _from_os_error(error: OSError, roots) -> StorageError | None:
  cause = _ERRNO_CAUSES.get(error.errno)
  for path in (error.filename, error.filename2):
    if cause and isinstance(path, str) and _is_under(path, roots):
      return StorageError(_shown(path, cause), cause)
  if cause == NO_SPACE and error.filename is None:
    # A write to an open file names no file: the full one of the roots.
    for root in roots:
      if _free_bytes(root) == 0:
        return StorageError(root, cause)
  return None


def _free_bytes(directory: str) -> int | None:
  try:
    stats = os.statvfs(directory)
  except OSError:
    return None
  return stats.f_bavail * stats.f_frsize


def _from_text(text: str, roots) -> StorageError | None:
  for marker, cause in _TEXT_CAUSES:
    if marker not in text:
      continue
    for path in re.findall(r"(/[^\s;:'\"]+)", text):
      if _is_under(path, roots):
        return StorageError(_shown(path, cause), cause)
  return None


def _nearest_missing(path: str) -> str:
  """The outermost missing directory of `path`: what was removed."""
  path = os.path.abspath(path)
  while True:
    parent = os.path.dirname(path)
    if parent == path or os.path.exists(parent):
      return path
    path = parent


def describe(error: BaseException, roots) -> StorageError | None:
  """The storage fault behind `error`, if it is one under `roots`.

  Args:
    error: What the run raised (an `OSError`, a TensorFlow `OpError`, or
      an error raised while handling one).
    roots: The directories the run writes (model_dir, the heartbeat file's
      directory, the scratch directory); faults elsewhere (the data) are
      not storage faults of the run.

  Returns:
    A `StorageError` naming the path, the cause and the fix, or None.
  """
  roots = [root for root in roots if root]
  for link in _chain(error):
    if isinstance(link, StorageError):
      return link
    if isinstance(link, OSError):
      found = _from_os_error(link, roots)
    else:  # TensorFlow's errors: the path and strerror in the text.
      found = _from_text(str(getattr(link, "message", None) or link), roots)
    if found is not None:
      return found
  return None


@contextlib.contextmanager
def named(path: str):
  """Gives an `OSError` raised in the block `path` if it names no file.

  A failed `write` or `flush` on an open file says only "No space left on
  device"; the path is what the user needs.
  """
  try:
    yield
  except OSError as error:
    if error.filename is not None:
      raise
    raise OSError(error.errno, error.strerror, path) from error


def append(path: str, text: str) -> None:
  """Appends `text` whole, or not at all (a full disk leaves no half line)."""
  data = memoryview(text.encode("utf-8"))
  with named(path), open(path, "ab", buffering=0) as stream:
    start = stream.seek(0, os.SEEK_END)
    try:
      while data:
        data = data[stream.write(data):]
    except OSError:
      stream.truncate(start)
      raise


def file_dir(path: str | None) -> str:
  """The directory of a file the run writes ("" for no file)."""
  return os.path.dirname(os.path.abspath(path)) if path else ""


def scratch_root() -> str:
  """Where non-chief workers write the checkpoints they throw away."""
  return tempfile.gettempdir()


def make_scratch():
  """A new scratch directory and the open, locked file that marks it live.

  Returns:
    (directory, lock): close `lock` after removing the directory.
  """
  directory = tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=scratch_root())
  lock = open(os.path.join(directory, _LOCK_NAME), "w", encoding="utf-8")
  fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
  return directory, lock


def remove_stale_scratch(root: str | None = None) -> list[str]:
  """Removes scratch directories whose worker died (e.g. SIGKILLed mid-save).

  A live save holds its directory's lock; a dead process's lock is released
  by the kernel, so a directory whose lock can be taken is stale.

  Returns:
    The directories removed.
  """
  root = root or scratch_root()
  removed = []
  try:
    names = os.listdir(root)
  except OSError:
    return removed
  for name in names:
    directory = os.path.join(root, name)
    if name.startswith(SCRATCH_PREFIX) and _is_stale(directory):
      shutil.rmtree(directory, ignore_errors=True)
      if not os.path.exists(directory):
        removed.append(directory)
  if removed:
    logging.info("Removed %d scratch director%s of killed workers in %s.",
                 len(removed), "y" if len(removed) == 1 else "ies", root)
  return removed


def _is_stale(directory: str) -> bool:
  try:
    lock = open(os.path.join(directory, _LOCK_NAME), "r", encoding="utf-8")
  except FileNotFoundError:  # Not yet locked, or an older harness's.
    try:
      return time.time() - os.stat(directory).st_mtime > _UNLOCKED_STALE_SECONDS
    except OSError:
      return False
  except OSError:
    return False
  with lock:
    try:
      fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      return False  # A live save holds it.
    return True
