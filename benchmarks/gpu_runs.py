"""One harness run in a child process, and what `gpu_scaling` reads from it.

Every measured run is `python -m launch` (or `python -m launch.local`) in a
fresh process group with its own model_dir, so a crash, a hang or a GPU
left in a bad state ends that run only. What is read afterwards comes from
the run itself: examples/s from `metrics.jsonl`, the collective
implementation from TensorFlow's (and NCCL's) own log lines, GPU memory from
`nvidia-smi` polled while it runs.
"""

import dataclasses
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading

from launch.distributed import devices
from trainer import layout

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# TensorFlow's VLOG modules (source file names) of its NCCL paths:
# NcclAllReduce (MirroredStrategy), collective ops with NCCL
# (MultiWorkerMirroredStrategy) and the NCCL communicator they share.
NCCL_VMODULE = ("nccl_manager=2,nccl_ops=2,collective_nccl=2,"
                "collective_nccl_all_reducer=2,collective_communicator=2,"
                "nccl_communicator=2")
# A TF log line from a source file with "nccl" in its name, or NCCL's own.
_NCCL_LINE = re.compile(r"nccl\w*\.cc:\d+\]|NCCL INFO", re.IGNORECASE)
_EXCEPTION_LINE = re.compile(r"^(\[[\w:]+\] )?[\w.]*(Error|Exception|Exit): ")
_ERROR_LINE = re.compile(r"\berror: ", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Run:
  """One training run of the harness.

  Attributes:
    name: Names its directory.
    devices: GPUs (or logical CPUs in the smoke) used in all.
    processes: 1 (`python -m launch`) or N local workers.
    model: A built-in network or `package.module:function`.
    flags: More `python -m launch` flags (e.g. `--jit_compile`).
    train_data: A TFRecord glob (schema.json beside it); None: synthetic.
  """

  name: str
  devices: int
  processes: int = 1
  model: str = "cnn"
  flags: tuple[str, ...] = ()
  train_data: str | None = None


@dataclasses.dataclass(frozen=True)
class Sizes:
  """Per-run sizes: examples per device per step, steps, steps per row."""

  batch_per_device: int
  train_steps: int
  steps_per_loop: int


@dataclasses.dataclass
class Result:
  """What one finished run left: its rate, last loss, log and GPU memory."""

  examples_per_sec: float
  last_loss: float
  log: str
  peak_memory_mb: dict[str, tuple[int, int]]  # GPU -> (used, total).

  def nccl_lines(self) -> list[str]:
    return [line for line in self.log.splitlines() if _NCCL_LINE.search(line)]


class RunFailed(Exception):
  """A run exited non-zero or timed out; the message is one line."""


def command(run: Run, *, smoke: bool, sizes: Sizes,
            model_dir: str) -> list[str]:
  """The `python -m launch[.local]` command line of one run."""
  batch = sizes.batch_per_device * run.devices
  args = [f"--model={run.model}", f"--global_batch_size={batch}",
          f"--train_steps={sizes.train_steps}",
          f"--steps_per_loop={sizes.steps_per_loop}",
          "--checkpoint_every=0", "--eval_every=0", "--progress=log",
          f"--model_dir={model_dir}", *run.flags]
  if run.train_data:
    args.append(f"--train_data={run.train_data}")
  else:  # Few examples: the data is built in memory before the first step.
    args += ["--dataset=synthetic", f"--synthetic_examples={batch * 16}",
             f"--synthetic_eval_examples={batch}"]
  share = run.devices // run.processes
  if smoke:
    args.append(f"--cpu_devices={share}")
  else:  # One policy everywhere, so rows compare (auto differs by layout).
    args.append("--gpu_memory=growth")
  if run.processes > 1:
    return [sys.executable, "-m", "launch.local",
            f"--workers={run.processes}", *args]
  strategy = "one_device" if run.devices == 1 else "mirrored"
  return [sys.executable, "-m", "launch", f"--strategy={strategy}", *args]


def child_env(visible: list[str], *, smoke: bool) -> dict[str, str]:
  """The environment of a run: its GPUs, and TF's and NCCL's own logs on."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0",
             TF_CPP_VMODULE=NCCL_VMODULE, NCCL_DEBUG="INFO",
             NCCL_DEBUG_SUBSYS="INIT",
             PYTHONPATH=os.pathsep.join(
                 p for p in (REPO_ROOT, os.environ.get("PYTHONPATH")) if p))
  env.pop("TF_CONFIG", None)
  env[devices.VISIBLE_DEVICES] = "" if smoke else ",".join(visible)
  return env


def examples_per_sec(metrics_path: str) -> tuple[float, float]:
  """Median examples/s of the train rows (first, warm-up loop left out),
  and the last train row's loss."""
  try:
    with open(metrics_path, encoding="utf-8") as stream:
      rows = [json.loads(line) for line in stream if line.strip()]
  except FileNotFoundError:
    raise RunFailed("the run wrote no metrics.jsonl") from None
  train = [row for row in rows if row.get("split") == "train"]
  if not train:
    raise RunFailed("metrics.jsonl has no train rows")
  rates = [row["examples_per_sec"] for row in train]
  return statistics.median(rates[1:] or rates), train[-1].get("loss", math.nan)


class MemoryPoller:
  """Polls `nvidia-smi` for the peak memory used on some GPUs, in a thread."""

  def __init__(self, gpus: list[str], interval: float = 0.5):
    self._gpus = gpus
    self._interval = interval
    self.peak: dict[str, tuple[int, int]] = {}
    self._stop = threading.Event()
    self._thread = None
    if gpus and shutil.which("nvidia-smi"):
      self._thread = threading.Thread(target=self._poll, daemon=True)

  def _poll(self):
    while not self._stop.wait(self._interval):
      try:
        output = subprocess.run(
            ["nvidia-smi", f"--id={','.join(self._gpus)}",
             "--query-gpu=index,memory.used,memory.total",
             "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True).stdout
      except (OSError, subprocess.SubprocessError):
        continue
      for line in output.strip().splitlines():
        index, used, total = (field.strip() for field in line.split(","))
        if used.isdigit() and total.isdigit():
          previous = self.peak.get(index, (0, 0))[0]
          self.peak[index] = (max(previous, int(used)), int(total))

  def __enter__(self):
    if self._thread:
      self._thread.start()
    return self

  def __exit__(self, *exc):
    self._stop.set()
    if self._thread:
      self._thread.join(timeout=15)


def execute(run: Run, *, smoke: bool, visible: list[str], sizes: Sizes,
            work_dir: str, timeout: float, poll_memory: bool = False
            ) -> Result:
  """Runs `run` on the GPUs `visible`; raises RunFailed with one line."""
  run_dir = tempfile.mkdtemp(prefix=f"{run.name}-", dir=work_dir)
  model_dir = os.path.join(run_dir, "model")
  log_path = os.path.join(run_dir, "output.log")
  argv = command(run, smoke=smoke, sizes=sizes, model_dir=model_dir)
  poller = MemoryPoller(visible if poll_memory and not smoke else [])
  with open(log_path, "w", encoding="utf-8") as log, poller:
    process = subprocess.Popen(
        argv, env=child_env(visible, smoke=smoke), cwd=REPO_ROOT, stdout=log,
        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True)
    try:
      returncode = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
      returncode = None
    finally:  # Also on Ctrl-C: nothing may stay on the GPUs.
      if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)  # launch.local's workers too.
        process.wait()
  with open(log_path, encoding="utf-8", errors="replace") as stream:
    output = stream.read()
  if returncode is None:
    raise RunFailed(f"no end after {timeout:.0f} s (a hang?); log: {log_path}")
  if returncode != 0:
    raise RunFailed(f"exit {returncode}: {last_error_line(output)}"
                    f" (log: {log_path})")
  rate, loss = examples_per_sec(layout.ModelDir(model_dir).metrics_jsonl)
  return Result(rate, loss, output, poller.peak)


def last_error_line(output: str) -> str:
  """The line of a failed run's output that most likely says why: the last
  Python exception, else the last "error:" line, else the last line."""
  lines = [line.strip() for line in output.splitlines() if line.strip()]
  for pattern in (_EXCEPTION_LINE, _ERROR_LINE):
    found = [line for line in lines if pattern.search(line)]
    if found:
      return found[-1][:300]
  return lines[-1][:300] if lines else "no output"


def gpus_seen_by_tensorflow(visible: list[str], *, timeout: float
                            ) -> tuple[int, str]:
  """How many GPUs TensorFlow sees with `visible`, and what it was built for."""
  code = ("import tensorflow as tf; info = tf.sysconfig.get_build_info();"
          " print('SEEN', len(tf.config.list_physical_devices('GPU')),"
          " tf.__version__, info.get('cuda_version', '-'),"
          " info.get('cudnn_version', '-'), tf.test.is_built_with_cuda())")
  env = child_env(visible, smoke=False)
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  result = subprocess.run([sys.executable, "-c", code], env=env,
                          capture_output=True, text=True, timeout=timeout,
                          check=False)
  line = next((line for line in result.stdout.splitlines()
               if line.startswith("SEEN ")), None)
  if line is None:
    raise RunFailed(f"importing TensorFlow failed:"
                    f" {last_error_line(result.stderr)}")
  _, seen, version, cuda, cudnn, with_cuda = line.split()
  return int(seen), (f"TensorFlow {version}, built with CUDA {cuda},"
                     f" cuDNN {cudnn} (CUDA build: {with_cuda})")


def write_tfrecords(directory: str, *, examples: int, shards: int = 4,
                    timeout: float = 300) -> str:
  """Writes 28x28x1 TFRecords and their schema.json as a user would.

  The writing happens in a child process without GPUs (TensorFlow is
  needed, and this process must not hold the GPUs). Returns the glob.
  """
  os.makedirs(directory, exist_ok=True)
  code = f"""
import json, numpy as np, tensorflow as tf
rng = np.random.default_rng(0)
for shard in range({shards}):
  with tf.io.TFRecordWriter({directory!r} + f"/train-{{shard}}.tfrecord") as w:
    for _ in range({examples} // {shards}):
      label = int(rng.integers(10))
      pixels = rng.normal(label / 10, 1.0, 784).astype(np.float32)
      w.write(tf.train.Example(features=tf.train.Features(feature={{
          "pixels": tf.train.Feature(float_list=tf.train.FloatList(
              value=pixels)),
          "label": tf.train.Feature(int64_list=tf.train.Int64List(
              value=[label]))}})).SerializeToString())
with open({directory!r} + "/schema.json", "w") as f:
  json.dump({{"features": {{"pixels": {{"shape": [28, 28, 1],
             "dtype": "float32"}}}}, "label": "label", "num_classes": 10}}, f)
"""
  env = child_env([], smoke=True)
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  result = subprocess.run([sys.executable, "-c", code], env=env,
                          capture_output=True, text=True, timeout=timeout,
                          check=False)
  if result.returncode != 0:
    raise RunFailed(f"writing TFRecords failed:"
                    f" {last_error_line(result.stderr)}")
  return os.path.join(directory, "train-*.tfrecord")
