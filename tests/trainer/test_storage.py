"""trainer.storage: real storage faults named in one sentence; scratch dirs."""

import os
import signal
import subprocess
import sys

import pytest
import tensorflow as tf

from tests import mounts
from tests.processes import harness_env
from trainer import storage


@pytest.fixture
def small_disk(tmp_path):
  mounts.require_mounts()
  with mounts.tmpfs(tmp_path / "disk", "1m") as disk:
    yield disk


def test_a_full_disk_names_the_file_and_leaves_no_half_line(small_disk):
  path = os.path.join(small_disk, "metrics.jsonl")
  storage.append(path, '{"step": 1}\n')
  mounts.fill(small_disk, leave_bytes=4096)
  with pytest.raises(OSError) as raised:
    storage.append(path, '{"step": 2, "pad": "' + "x" * 100_000 + '"}\n')
  fault = storage.describe(raised.value, [small_disk])
  assert fault.cause == storage.NO_SPACE and fault.path == path
  assert str(fault).startswith(f"cannot write {path}: no space is left")
  assert str(fault).count(";") == 1 and str(fault).endswith("checkpoint.")
  with open(path, encoding="utf-8") as stream:
    assert stream.read() == '{"step": 1}\n'  # Not a broken second row.


def test_a_write_that_names_no_file_names_the_full_directory(small_disk):
  mounts.fill(small_disk)
  with pytest.raises(OSError) as raised:
    with open(os.path.join(small_disk, "x"), "a", buffering=1) as stream:
      stream.write("x" * 100_000 + "\n")
  assert raised.value.filename is None
  fault = storage.describe(raised.value, ["/nonexistent", small_disk])
  assert (fault.path, fault.cause) == (small_disk, storage.NO_SPACE)


def test_tensorflow_checkpoint_on_a_full_disk_names_the_directory(
    small_disk):
  mounts.fill(small_disk, leave_bytes=20_000)
  checkpoint = tf.train.Checkpoint(v=tf.Variable(tf.zeros([100_000])))
  with pytest.raises(tf.errors.OpError) as raised:
    tf.train.CheckpointManager(
        checkpoint, os.path.join(small_disk, "checkpoints"),
        max_to_keep=1).save(checkpoint_number=5)
  fault = storage.describe(raised.value, [small_disk])
  assert fault.path == os.path.join(small_disk, "checkpoints")  # No temps.
  assert fault.cause == storage.NO_SPACE


def test_read_only_and_removed(tmp_path):
  mounts.require_mounts()
  run = tmp_path / "run"
  run.mkdir()
  with mounts.read_only(run):
    with pytest.raises(OSError) as raised:
      (run / "metrics.csv.tmp").write_text("x")
  fault = storage.describe(raised.value, [str(run)])
  assert fault.cause == storage.READ_ONLY
  assert fault.path == str(run / "metrics.csv")
  os.rmdir(run)
  with pytest.raises(OSError) as raised:
    (run / "summaries" / "x").write_text("x")
  fault = storage.describe(raised.value, [str(run)])
  assert (fault.cause, fault.path) == (storage.GONE, str(run))


def test_faults_outside_the_runs_directories_are_not_storage_faults(
    tmp_path):
  with pytest.raises(OSError) as raised:
    open(tmp_path / "data" / "train.csv", encoding="utf-8")
  assert storage.describe(raised.value, [str(tmp_path / "run")]) is None
  try:  # Raised while handling one: found through the chain.
    try:
      open(tmp_path / "run" / "x", encoding="utf-8")
    except OSError:
      raise ValueError("while reporting")  # pylint: disable=raise-missing-from
  except ValueError as error:
    fault = storage.describe(error, [str(tmp_path / "run")])
  assert fault.cause == storage.GONE


_SAVE_THEN_HANG = """
import sys, time
from trainer import storage
directory, lock = storage.make_scratch()
print(directory, flush=True)
time.sleep(600)
"""


def test_a_killed_workers_scratch_directory_is_removed_a_live_one_kept(
    tmp_path):
  env = harness_env(TMPDIR=str(tmp_path))
  killed = subprocess.Popen([sys.executable, "-c", _SAVE_THEN_HANG], env=env,
                            stdout=subprocess.PIPE, text=True)
  live = subprocess.Popen([sys.executable, "-c", _SAVE_THEN_HANG], env=env,
                          stdout=subprocess.PIPE, text=True)
  try:
    killed_dir = killed.stdout.readline().strip()
    live_dir = live.stdout.readline().strip()
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert os.path.isdir(killed_dir)  # What SIGKILL leaves behind.
    removed = storage.remove_stale_scratch(str(tmp_path))
    assert removed == [killed_dir]
    assert not os.path.exists(killed_dir) and os.path.isdir(live_dir)
  finally:
    for process in (killed, live):
      process.kill()
      process.wait()
