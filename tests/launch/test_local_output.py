"""launch.local writes each worker's output line whole."""

import sys
import threading
import time

from launch.local import worker


class _SlowPipe:
  """A stdout whose writes let other threads run, as a pipe's can."""

  def __init__(self):
    self.parts = []

  def write(self, text):
    self.parts.append(text)
    time.sleep(0)  # Releases the GIL: another thread may write here.
    return len(text)

  def flush(self):
    time.sleep(0)


def test_lines_from_several_threads_never_merge(monkeypatch):
  pipe = _SlowPipe()
  monkeypatch.setattr(sys, "stdout", pipe)

  def write(name):
    for index in range(300):
      worker.say(f"[{name}] line {index}")

  threads = [threading.Thread(target=write, args=(f"worker:{i}",))
             for i in range(3)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  lines = "".join(pipe.parts).splitlines()
  assert len(lines) == 900
  assert all(line.startswith("[worker:") and line.count("[") == 1
             for line in lines)
