"""Small file systems for storage-fault tests: a tmpfs, a read-only bind.

Mounting needs root (CAP_SYS_ADMIN); `require_mounts()` skips with that
reason otherwise. Every mount is undone when its `with` block ends.
"""

import contextlib
import os
import subprocess

import pytest


def _mount(*args: str) -> None:
  subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


def require_mounts() -> None:
  """Skips the test unless this process may mount file systems."""
  if os.geteuid() != 0:
    pytest.skip("storage faults are made with mount(8), which needs root")


@contextlib.contextmanager
def tmpfs(directory, size: str):
  """A tmpfs of `size` (e.g. "4m") on `directory`, created if needed."""
  os.makedirs(directory, exist_ok=True)
  _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory))
  try:
    yield str(directory)
  finally:
    subprocess.run(["umount", "-l", str(directory)], check=False)


def make_read_only(directory) -> None:
  """Turns `directory` read-only (even for root): a read-only bind mount."""
  _mount("--bind", str(directory), str(directory))
  _mount("-o", "remount,bind,ro", str(directory))


def unmount(directory) -> None:
  subprocess.run(["umount", "-l", str(directory)], check=False)


@contextlib.contextmanager
def read_only(directory):
  """`directory` read-only for the block, writable again after."""
  make_read_only(directory)
  try:
    yield str(directory)
  finally:
    unmount(directory)


def fill(directory, leave_bytes: int = 0) -> str:
  """Writes a ballast file until `leave_bytes` (about) remain free."""
  ballast = os.path.join(str(directory), "ballast")
  stats = os.statvfs(directory)
  size = max(0, stats.f_bavail * stats.f_frsize - leave_bytes)
  with open(ballast, "wb", buffering=0) as stream:
    try:
      stream.write(b"\0" * size)
      stream.flush()
    except OSError:
      pass  # Full: what was asked for.
  return ballast
