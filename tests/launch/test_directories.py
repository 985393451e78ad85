"""The start-up check of every directory a run writes, with real mounts.

Root ignores permission bits, so each case is made the way it happens to
a user: a read-only bind mount, an immutable directory, a full tmpfs.
"""

import os
import subprocess

import pytest

from tests import mounts
from tests.processes import launch_in_this_process


def listing(directory) -> list[str]:
  return sorted(os.path.relpath(os.path.join(root, name), directory)
                for root, dirs, files in os.walk(directory)
                for name in dirs + files)


def refused(args: list[str]) -> str:
  code, errors = launch_in_this_process(["--train_steps=10", *args])
  assert code == 2 and len(errors) == 1, (code, errors)
  return errors[0]


@pytest.mark.parametrize("subdirectory", [
    "checkpoints", "summaries/train", "export", "logs", "best_checkpoint"])
def test_a_read_only_subdirectory_is_refused_before_anything_is_written(
    tmp_path, subdirectory):
  mounts.require_mounts()
  run = tmp_path / "run"
  (run / subdirectory).mkdir(parents=True)
  before = listing(run)
  extra = (["--keep_best_checkpoint", "--eval_every=5"]
           if subdirectory == "best_checkpoint" else [])
  with mounts.read_only(run / subdirectory):
    error = refused([f"--model_dir={run}", *extra])
  assert error == (f"error: --model_dir={run} is not writable:"
                   f" {run / subdirectory} is on a read-only file system;"
                   " make it writable or choose another --model_dir.")
  assert listing(run) == before  # Not even config.json, nor a probe file.


def test_best_checkpoint_is_checked_only_when_kept(tmp_path, monkeypatch):
  mounts.require_mounts()
  monkeypatch.setenv("TF_CONFIG", "{oops")  # Read after the checks.
  run = tmp_path / "run"
  (run / "best_checkpoint").mkdir(parents=True)
  with mounts.read_only(run / "best_checkpoint"):
    code, errors = launch_in_this_process(
        ["--train_steps=10", f"--model_dir={run}"])
  assert code == 2 and "TF_CONFIG" in errors[0], errors


def test_a_read_only_model_dir_and_its_missing_subdirectories(tmp_path):
  mounts.require_mounts()
  parent = tmp_path / "disk"
  parent.mkdir()
  with mounts.read_only(parent):
    error = refused([f"--model_dir={parent / 'run'}"])
  assert "is not writable" in error and "read-only" in error


def test_an_immutable_model_dir(tmp_path):
  run = tmp_path / "run"
  run.mkdir()
  if subprocess.run(["chattr", "+i", str(run)], check=False).returncode:
    pytest.skip("chattr +i is not supported on this file system")
  try:
    error = refused([f"--model_dir={run}"])
  finally:
    subprocess.run(["chattr", "-i", str(run)], check=True)
  assert error.startswith(f"error: --model_dir={run} is not writable: it")


def test_the_heartbeat_files_directory(tmp_path):
  mounts.require_mounts()
  beats = tmp_path / "beats"
  beats.mkdir()
  with mounts.read_only(beats):
    error = refused([f"--model_dir={tmp_path / 'run'}",
                     f"--heartbeat_file={beats / 'w0'}"])
  assert error.startswith(f"error: --heartbeat_file={beats / 'w0'} is not"
                          f" writable: {beats} is on a read-only")
  assert not (tmp_path / "run").exists()


def test_a_full_disk_is_refused(tmp_path):
  mounts.require_mounts()
  with mounts.tmpfs(tmp_path / "disk", "2m") as disk:
    mounts.fill(disk, leave_bytes=100_000)
    error = refused([f"--model_dir={disk}/run"])
  assert error.startswith(f"error: --model_dir={disk}/run has ")
  assert "KiB free on its file system" in error


def test_a_writable_new_model_dir_passes_and_is_not_created(tmp_path,
                                                           monkeypatch):
  monkeypatch.setenv("TF_CONFIG", "{oops")  # Read after the checks.
  code, errors = launch_in_this_process(
      ["--train_steps=10", f"--model_dir={tmp_path / 'a' / 'run'}"])
  assert code == 2 and "TF_CONFIG" in errors[0], errors
  assert not (tmp_path / "a").exists()


def test_a_non_chief_workers_scratch_directory(tmp_path, monkeypatch):
  import json
  import tempfile
  mounts.require_mounts()
  scratch = tmp_path / "tmp"
  scratch.mkdir()
  monkeypatch.setenv("TF_CONFIG", json.dumps({
      "cluster": {"worker": ["localhost:1", "localhost:2"]},
      "task": {"type": "worker", "index": 1}}))
  monkeypatch.setattr(tempfile, "tempdir", str(scratch))
  with mounts.read_only(scratch):
    error = refused([f"--model_dir={tmp_path / 'run'}"])
  assert error == (f"error: this worker's scratch directory {scratch} (the"
                   " temporary directory, where non-chief workers write their"
                   " part of each checkpoint) is not writable (Read-only file"
                   " system); set TMPDIR to a writable directory.")
