"""A private network namespace for local workers: loopback only.

TensorFlow's gRPC server listens on every interface (`*:PORT`) whatever
TF_CONFIG says, and its distributed runtime has no authentication: whoever
reaches the port can run ops in the worker. TensorFlow has no option to bind
one address, so `launch.local` runs its workers in a network namespace of
their own, whose only interface is a loopback device nobody else can reach.

A small holder process creates the namespace and keeps it alive; each worker
joins it (`setns`) in a tiny wrapper that then `exec`s the real command.
Creating a namespace needs CAP_SYS_ADMIN (root, or a container that grants
it); without it the workers run exposed and the supervisor says so.
"""

import os
import subprocess
import sys

# Creates the namespace, brings its loopback device up, then waits for its
# stdin to close (the supervisor exiting, even by SIGKILL, closes it).
_HOLDER = r"""
import ctypes, fcntl, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000  # <sched.h>
if libc.unshare(CLONE_NEWNET) != 0:
  print("error", ctypes.get_errno(), flush=True)
  sys.exit(1)
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
  request = struct.pack("16sh", b"lo", 0)
  flags = struct.unpack("16sh", fcntl.ioctl(sock, 0x8913, request))[1]
  fcntl.ioctl(sock, 0x8914, struct.pack("16sh", b"lo", flags | 1))
print("ready", flush=True)
sys.stdin.read()
"""

# Joins the holder's namespace, then becomes the worker command.
_ENTER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(sys.argv[1], os.O_RDONLY)
CLONE_NEWNET = 0x40000000  # <sched.h>
if libc.setns(fd, CLONE_NEWNET) != 0:
  sys.exit("error: cannot join the workers' network namespace (errno %d)."
           % ctypes.get_errno())
os.close(fd)
os.execvp(sys.argv[2], sys.argv[2:])
"""


class LoopbackNamespace:
  """Context manager: a namespace the workers join, or None if impossible.

  Attributes:
    problem: Why the namespace could not be made (None when it was).
  """

  def __init__(self):
    self._holder = None
    self.problem = None

  def __enter__(self) -> "LoopbackNamespace":
    try:
      self._holder = subprocess.Popen(
          [sys.executable, "-c", _HOLDER], stdin=subprocess.PIPE,
          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
      answer = self._holder.stdout.readline().split()
    except OSError as error:
      answer = ["error", str(error.errno)]
    if answer != ["ready"]:
      errno = int(answer[1]) if len(answer) > 1 else 0
      self.problem = os.strerror(errno) if errno else "the holder failed"
      self.__exit__()
    return self

  @property
  def is_isolated(self) -> bool:
    return self._holder is not None

  def wrap(self, command: list[str]) -> list[str]:
    """`command` run inside the namespace (unchanged if there is none)."""
    if self._holder is None:
      return command
    return [sys.executable, "-c", _ENTER,
            f"/proc/{self._holder.pid}/ns/net", *command]

  def __exit__(self, *exc_info) -> None:
    if self._holder is not None:
      self._holder.stdin.close()
      self._holder.wait()
      self._holder.stdout.close()
      self._holder = None
