"""One training run per model_dir: a lock the kernel drops with its holder.

Two runs writing one model_dir would overwrite each other's checkpoints and
interleave their metrics without a word, so the chief of a training run
holds `model_dir/.lock` from before it writes anything until the run
returns or raises. The lock is `flock(2)` on that file: the kernel releases
it when the holding process ends in any way (SIGKILL, a crash), so a crash
never blocks a restart, and a restarted group simply takes it again. The
file holds the holder's host and pid, for the refusal's message; it is
removed when the holder releases the lock.
`launch.local` holds it for its whole group, across restarts, and its chief
inherits it (`INHERITED_FD_ENV`), so a second group is refused before it
writes its logs into model_dir/logs.

Who takes it: only the chief of `--mode=train`. `--mode=evaluate` and an
evaluator task only read checkpoints (and write their own evaluation
files), and the other workers write only scratch directories, so they
neither take it nor are stopped by it.

flock is exact on a local filesystem. On network filesystems see
docs/fault-tolerance.md ("One run per model_dir"): it holds across hosts on
NFS with working lock daemons (NFSv4, or NFSv3 with lockd) and on Lustre
mounted with `-o flock`, but only per host on a FUSE mount such as
gcsfuse; where the filesystem refuses locks the run goes on with a
warning.
"""

import contextlib
import errno
import fcntl
import json
import os
import socket
import time

from absl import logging

from launch.errors import ConfigError, flag
from trainer import layout

# `launch.local` holds the lock for its whole group (restarts included) and
# hands it to its chief: the descriptor number, inherited by that process.
INHERITED_FD_ENV = "TFHARNESS_MODEL_DIR_LOCK_FD"
# Filesystems without locks answer with one of these.
_UNSUPPORTED = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


def _holder_text(fd: int) -> str:
  """"pid P on host H, started T" from the file, or a vaguer phrase."""
  try:
    os.lseek(fd, 0, os.SEEK_SET)
    holder = json.loads(os.read(fd, 4096).decode() or "{}")
    return (f"pid {holder['pid']} on host {holder['host']}, started"
            f" {holder['started']}")
  except (OSError, ValueError, KeyError):  # Taken but not yet written.
    return "a process that is just starting"


def _refusal(model_dir: str, holder: str) -> ConfigError:
  return ConfigError(
      f"{flag('model_dir')}={model_dir} is in use by another training run"
      f" ({holder}); wait for it to end or stop it, or use another"
      f" {flag('model_dir')}.")


class ModelDirLock:
  """Context manager: holds `model_dir/.lock` or raises ConfigError."""

  def __init__(self, model_dir: str):
    self._model_dir = model_dir
    self._path = layout.ModelDir(model_dir).lock
    self._fd = None
    self._created_dir = False

  @property
  def fd(self) -> int | None:
    """The held lock's descriptor (None: not held by this object)."""
    return self._fd

  def _is_inherited(self) -> bool:
    """Whether this process got this very lock from its launcher."""
    try:
      fd = int(os.environ.get(INHERITED_FD_ENV, ""))
      if not self._is_current(fd):
        return False
      # The same open file description: the launcher's lock, so this is a
      # no-op that succeeds; any other descriptor would be refused.
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      return True
    except (ValueError, OSError):
      return False

  def __enter__(self) -> "ModelDirLock":
    if self._is_inherited():
      return self  # Held by the launcher, which releases it.
    self._created_dir = not os.path.isdir(self._model_dir)
    while self._fd is None:
      try:
        os.makedirs(self._model_dir, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                     0o644)
      except OSError as error:
        raise ConfigError(f"{flag('model_dir')}={self._model_dir} cannot be"
                          f" written ({error.strerror}: {error.filename});"
                          f" choose a writable {flag('model_dir')}.") from None
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except BlockingIOError:
        holder = _holder_text(fd)
        os.close(fd)
        raise _refusal(self._model_dir, holder) from None
      except OSError as error:
        os.close(fd)
        if error.errno not in _UNSUPPORTED:
          raise
        logging.warning(
            "The filesystem of %s cannot lock files (%s): a second training"
            " run on this model_dir would not be refused.", self._model_dir,
            error.strerror)
        return self
      if self._is_current(fd):
        self._fd = fd
      else:  # Locked a file its holder removed on release: try again.
        os.close(fd)
    os.ftruncate(self._fd, 0)
    os.write(self._fd, json.dumps({
        "host": socket.gethostname(), "pid": os.getpid(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}).encode())
    return self

  def _is_current(self, fd: int) -> bool:
    """Whether `fd` is still the file at the lock's path."""
    try:
      here, held = os.stat(self._path), os.fstat(fd)
    except OSError:
      return False
    return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)

  def __exit__(self, *exc_info) -> None:
    if self._fd is None:
      return
    # Removed while still held, so whoever opened it meanwhile sees a stale
    # file (`_is_current`) and retries on a new one.
    with contextlib.suppress(OSError):
      os.unlink(self._path)
      if self._created_dir:  # Bad input before any write: leave no trace.
        os.rmdir(self._model_dir)
    os.close(self._fd)
    self._fd = None


def check_free(model_dir: str) -> None:
  """Raises ConfigError if a training run holds `model_dir`'s lock now.

  For `launch.local`, before it writes its logs into model_dir.
  """
  try:
    fd = os.open(layout.ModelDir(model_dir).lock, os.O_RDONLY | os.O_CLOEXEC)
  except OSError:
    return  # No lock file: nobody holds it.
  try:
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
  except BlockingIOError:
    raise _refusal(model_dir, _holder_text(fd)) from None
  except OSError:
    pass  # No locks on this filesystem: the chief warns.
  finally:
    os.close(fd)


def for_run(plan) -> contextlib.AbstractContextManager:
  """The lock a planned run holds: the training chief's, else none.

  Args:
    plan: A `launch.run.plan.Plan`.
  """
  if plan.config.mode == "train" and plan.cluster.is_chief:
    return ModelDirLock(plan.config.train.model_dir)
  return contextlib.nullcontext()
