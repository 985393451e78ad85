"""launch.local writes each worker's output line whole."""

import io
import sys
import threading

from launch.local import worker


def test_lines_from_several_threads_never_merge(monkeypatch):
  stream = io.StringIO()
  monkeypatch.setattr(sys, "stdout", stream)

  def write(name):
    for index in range(2000):
      worker.say(f"[{name}] line {index}")

  threads = [threading.Thread(target=write, args=(f"worker:{i}",))
             for i in range(3)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  lines = stream.getvalue().splitlines()
  assert len(lines) == 6000
  assert all(line.startswith("[worker:") and line.count("[") == 1
             for line in lines)
