"""A long multi-worker run: threads and memory stay flat.

TensorFlow's collective timeout once leaked a thread per collective (4.4 per
MLP step): 13,000 threads at step 3,000, dead at 3,650. This runs 20,000
steps with default flags under launch.local and samples every worker.
"""

import re
import subprocess
import sys
import threading
import time

import pytest

from tests.processes import REPO_ROOT, harness_env

pytestmark = [pytest.mark.slow, pytest.mark.soak]

STEPS = 20_000


def read_status(pid):
  """(threads, resident MiB) of a live process, or None."""
  try:
    with open(f"/proc/{pid}/status", encoding="utf-8") as status:
      text = status.read()
  except OSError:
    return None
  threads = re.search(r"Threads:\s+(\d+)", text)
  rss = re.search(r"VmRSS:\s+(\d+)", text)
  if not threads or not rss:  # Exiting: a zombie has no memory lines.
    return None
  return int(threads.group(1)), int(rss.group(1)) / 1024


def test_twenty_thousand_steps_on_two_workers_stay_flat(tmp_path):
  supervisor = subprocess.Popen(
      [sys.executable, "-m", "launch.local", "--workers=2",
       f"--model_dir={tmp_path / 'run'}", f"--train_steps={STEPS}"],
      env=harness_env(), cwd=REPO_ROOT, stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True)
  pids, lines = {}, []

  def pump():
    for line in supervisor.stdout:
      lines.append(line)
      started = re.search(r"started (worker:\d) \(pid (\d+),", line)
      if started:
        pids[started.group(1)] = int(started.group(2))

  reader = threading.Thread(target=pump, daemon=True)
  reader.start()
  samples = {}  # worker -> [(seconds, threads, rss)]
  start = time.monotonic()
  try:
    while supervisor.poll() is None and time.monotonic() - start < 900:
      for name, pid in list(pids.items()):
        status = read_status(pid)
        if status:
          samples.setdefault(name, []).append(
              (time.monotonic() - start, *status))
      time.sleep(1)
  finally:
    supervisor.kill()
    supervisor.wait()
  reader.join(timeout=10)
  output = "".join(lines)
  assert supervisor.returncode == 0, output[-3000:]
  assert f"Final eval at step {STEPS}" in output
  assert set(samples) == {"worker:0", "worker:1"}
  for name, rows in samples.items():
    threads = [row[1] for row in rows]
    assert max(threads) < 300, (name, max(threads))
    # Memory after warm-up (the second quarter) vs the end of the run.
    steady = [row[2] for row in rows[len(rows) // 4:]]
    assert len(steady) > 10, rows
    assert steady[-1] - steady[0] < 100, (name, steady[0], steady[-1])
