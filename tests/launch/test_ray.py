"""`fit` under a real Ray (Train and Tune) started here, on loopback only.

One Ray instance for the module (`ray_address`); the drivers are the docs'
examples (docs/ray.md) run as a user runs them, joining it by RAY_ADDRESS.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from tests import checkpoints
from tests.docs.examples import docs_example
from tests.processes import REPO_ROOT, harness_env

pytestmark = pytest.mark.slow

# A single-machine Ray: every Ray process listens on 127.0.0.1 (docs/ray.md).
_LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
_STEPS = 40
# TensorFlow's C++ start-up lines, which launch.ray filters.
_TF_NOISE = ("cuInit", "oneDNN", "absl::InitializeLog", "cuda drivers",
             "cpu_feature_guard")


@pytest.fixture(scope="module")
def ray_address():
  """A local Ray for the module: 2 CPUs, a small object store, no dashboard."""
  saved = {name: os.environ.get(name) for name in (*_LOOPBACK_ENV,
                                                   "PYTHONPATH")}
  os.environ.update(_LOOPBACK_ENV)  # Read when Ray is imported.
  os.environ["PYTHONPATH"] = os.pathsep.join(
      path for path in (REPO_ROOT, saved["PYTHONPATH"]) if path)
  assert "ray" not in sys.modules, "Ray was imported before its settings"
  import ray  # pylint: disable=import-outside-toplevel
  ray.init(address="local", _node_ip_address="127.0.0.1",
           include_dashboard=False, num_cpus=2,
           object_store_memory=80 * 2**20, log_to_driver=False)
  try:
    yield ray.get_runtime_context().gcs_address
  finally:
    ray.shutdown()
    for name, value in saved.items():
      if value is None:
        os.environ.pop(name, None)
      else:
        os.environ[name] = value


def _driver(script, args, ray_address, cwd, timeout=400):
  """Runs a driver script joining the module's Ray; its whole output."""
  result = subprocess.run(
      [sys.executable, str(script), *args], cwd=cwd, timeout=timeout,
      env=harness_env(RAY_ADDRESS=ray_address, **_LOOPBACK_ENV),
      capture_output=True, text=True, check=False)
  return result.returncode, result.stdout + result.stderr


def _ray_train_example(directory):
  path = directory / "ray_train.py"
  path.write_text(docs_example("docs/ray.md", "ray-train"))
  return path


@pytest.fixture(scope="module")
def ray_run(ray_address, tmp_path_factory):
  """The docs' Ray Train example, uninterrupted: (dir, output)."""
  root = tmp_path_factory.mktemp("ray-run")
  script = _ray_train_example(root)
  code, output = _driver(script, [
      f"--model_dir={root / 'run'}", f"--storage_path={root / 'results'}",
      f"--train_steps={_STEPS}"], ray_address, root)
  assert code == 0, output[-4000:]
  return root, output


def _descendants(pid: int) -> set[int]:
  """`pid` and every process under it (from /proc)."""
  parents = {}
  for entry in os.listdir("/proc"):
    try:
      with open(f"/proc/{entry}/stat", encoding="utf-8") as stream:
        parents[int(entry)] = int(stream.read().rsplit(")", 1)[1].split()[1])
    except (ValueError, OSError):
      continue
  found, grew = {pid}, True
  while grew:
    more = {child for child, parent in parents.items() if parent in found}
    grew = bool(more - found)
    found |= more
  return found


def _listening_addresses(pids: set[int]) -> list[str]:
  """The local addresses (hex, as /proc/net writes them) `pids` listen on."""
  inodes = set()
  for pid in pids:
    try:
      for fd in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        if target.startswith("socket:["):
          inodes.add(target[len("socket:["):-1])
    except OSError:
      continue  # Gone meanwhile.
  addresses = []
  for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    with open(table, encoding="utf-8") as stream:
      for row in stream.read().splitlines()[1:]:
        fields = row.split()
        if fields[3] == "0A" and fields[9] in inodes:  # LISTEN.
          addresses.append(fields[1].split(":")[0])
  return addresses


def test_ray_listens_on_loopback_only(ray_address):
  del ray_address
  addresses = _listening_addresses(_descendants(os.getpid()))
  assert len(addresses) >= 3  # The driver's, gcs_server's, the raylet's...
  loopback = ("0100007F",  # 127.0.0.1; then ::ffff:127.0.0.1 and ::1.
              "0000000000000000FFFF00000100007F",
              "00000000000000000000000001000000")
  assert [a for a in addresses if a not in loopback] == [], addresses


def test_two_ray_workers_equal_launch_local(ray_run, tmp_path):
  root, output = ray_run
  assert not [noise for noise in _TF_NOISE if noise in output], output[:4000]
  # The example's own function on launch.local's 2 workers.
  local_script = tmp_path / "local_train.py"
  local_script.write_text(
      "import sys\n"
      f"sys.path.insert(0, {str(root)!r})\n"
      "from ray_train import train\n"
      f"train(dict(model_dir=sys.argv[1], train_steps={_STEPS},"
      " learning_rate=0.003, steps_per_loop=10, eval_every=20,"
      " checkpoint_every=20))\n")
  local = subprocess.run(
      [sys.executable, "-m", "launch.local", "--workers=2", str(local_script),
       str(tmp_path / "local")], env=harness_env(), cwd=tmp_path,
      capture_output=True, text=True, timeout=300, check=False)
  assert local.returncode == 0, local.stderr[-4000:]
  on_ray = checkpoints.checkpoint_arrays(root / "run" / "checkpoints")
  on_local = checkpoints.checkpoint_arrays(tmp_path / "local" / "checkpoints")
  assert on_ray.keys() == on_local.keys() and on_ray
  difference = max(float(np.max(np.abs(on_ray[name] - on_local[name])))
                   for name in on_ray)
  print(f"Ray vs launch.local: largest weight difference {difference:.3g}")
  assert difference <= 1e-6
  # Ray's Result: the final evaluation and a copy of the final checkpoint.
  final = [line for line in output.splitlines() if line.startswith(
      "accuracy ")]
  assert len(final) == 1 and f"at step {_STEPS}; checkpoint " in final[0]
  reported = checkpoints.checkpoint_arrays(final[0].split("checkpoint ")[1])
  assert all(np.array_equal(reported[name], on_ray[name]) for name in on_ray)
  rows = [json.loads(row) for row in
          (root / "run" / "metrics.jsonl").read_text().splitlines()]
  last_eval = [row for row in rows if row["split"] == "eval"][-1]
  assert final[0].startswith(f"accuracy {last_eval['accuracy']:.4f} ")


def _kill_rank_one_after_checkpoint(run_dir, pid_dir, killed: list) -> None:
  """Once the chief saved step 20, SIGKILLs worker 1 (a Ray actor)."""
  deadline = time.monotonic() + 300
  while time.monotonic() < deadline:
    pids = [name for name in os.listdir(pid_dir) if name.startswith("1-")]
    if pids and (run_dir / "checkpoints" / "ckpt-20.index").exists():
      pid = int(pids[0].split("-")[1])
      os.kill(pid, signal.SIGKILL)
      killed.append(pid)
      return
    time.sleep(0.05)


def test_killed_worker_is_restarted_and_ends_equal(ray_run, ray_address,
                                                   tmp_path):
  uninterrupted, _ = ray_run
  pid_dir = tmp_path / "pids"
  pid_dir.mkdir()
  script = _ray_train_example(tmp_path)
  # The example, its workers slowed by a callback (0.5 s per loop) and
  # telling their pids: a user's callback, not a change of the result.
  script.write_text(script.read_text().replace(
      "global_batch_size=64, deterministic=True, progress=\"log\", **config)",
      "global_batch_size=64, deterministic=True, progress=\"log\","
      " callbacks=[_Slow()], **config)").replace(
      "def train(config):",
      "import os, time, ray.train\n"
      "from trainer.callbacks import Callback\n\n\n"
      "class _Slow(Callback):\n"
      "  def on_train_loop_end(self, step, logs):\n"
      "    time.sleep(0.5)\n\n\n"
      "def train(config):\n"
      f"  open(os.path.join({str(pid_dir)!r}, f'{{ray.train.get_context()"
      ".get_world_rank()}-{os.getpid()}'), 'w').close()\n"))
  killed = []
  killer = threading.Thread(target=_kill_rank_one_after_checkpoint, args=(
      tmp_path / "run", pid_dir, killed), daemon=True)
  killer.start()
  code, output = _driver(script, [
      f"--model_dir={tmp_path / 'run'}",
      f"--storage_path={tmp_path / 'results'}",
      f"--train_steps={_STEPS}"], ray_address, tmp_path)
  killer.join(timeout=5)
  assert code == 0, output[-4000:]
  assert killed, "worker 1 was never killed"
  restarted = [name for name in os.listdir(pid_dir) if name.startswith("1-")]
  assert len(restarted) == 2, restarted  # Ray started worker 1 again.
  assert "Resuming from step 20" in output, output[-4000:]
  after = checkpoints.checkpoint_arrays(tmp_path / "run" / "checkpoints")
  before = checkpoints.checkpoint_arrays(uninterrupted / "run" /
                                         "checkpoints")
  assert after.keys() == before.keys()
  assert all(np.array_equal(after[name], before[name]) for name in before)


def test_tune_reads_the_reported_metrics_and_asha_stops_the_weak_trial(
    ray_address, tmp_path):
  script = tmp_path / "ray_tune.py"
  script.write_text(docs_example("docs/ray.md", "ray-tune"))
  code, output = _driver(script, [str(tmp_path / "tune")], ray_address,
                         tmp_path)
  assert code == 0, output[-4000:]
  assert "\n0 trial(s) failed\n" in output  # The stopped one too.
  assert not [noise for noise in _TF_NOISE if noise in output], output[:4000]
  lines = {line.split(":")[0]: line for line in output.splitlines()
           if line.startswith("lr ")}
  print(lines)
  assert set(lines) == {"lr 0.05", "lr 1e-05"}, output[-4000:]
  assert lines["lr 0.05"].endswith("at step 60")  # Ran to the end.
  strong = float(lines["lr 0.05"].split("accuracy ")[1].split()[0])
  weak = float(lines["lr 1e-05"].split("accuracy ")[1].split()[0])
  assert strong > 0.8 and weak < strong
  assert lines["lr 1e-05"].endswith("at step 10")  # ASHA stopped it.


def test_a_bad_option_is_one_sentence_on_the_driver(ray_address, tmp_path):
  script = _ray_train_example(tmp_path)
  code, output = _driver(script, [
      f"--model_dir={tmp_path / 'run'}",
      f"--storage_path={tmp_path / 'results'}", "--learning_rate=-1",
      "--max_failures=0"], ray_address, tmp_path)
  assert code == 1, output[-4000:]
  assert output.count("learning_rate=-1.0 must be positive") == 1, output
  assert "error: learning_rate=-1.0 must be positive.\n" in output, output
  assert "Traceback" not in output and "WorkerGroupError" not in output, (
      output[-4000:])
  assert not (tmp_path / "run").exists()  # Nothing written.


def test_benchmark_runs_briefly(ray_address, tmp_path):
  """benchmarks/ray_vs_local.py, one short round (its numbers: docs)."""
  output = tmp_path / "ray_vs_local.json"
  result = subprocess.run(
      [sys.executable, "-m", "benchmarks.ray_vs_local", "--rounds=1",
       "--train_steps=50", "--steps_per_loop=25", "--warmup_loops=1",
       f"--output={output}"],
      env=harness_env(RAY_ADDRESS=ray_address, **_LOOPBACK_ENV),
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=400,
      check=False)
  assert result.returncode == 0, result.stderr[-4000:]
  summary = json.loads(output.read_text())
  for name in ("launch.local", "ray"):
    assert summary[name]["examples_per_sec"] > 0
    assert 0 < summary[name]["startup_s"] < summary[name]["wall_s"]
