"""`python -m benchmarks.gpu_scaling`: examples/s on 1, 2, 4, ... GPUs.

For each model and each GPU count G (1, 2, 4, ... up to the node's visible
GPUs), it trains on synthetic data with a global batch of
`--batch_per_gpu` x G, so every replica's batch stays the same:

* as one process: `python -m launch` (one_device for G = 1, mirrored over
  the GPUs otherwise) with CUDA_VISIBLE_DEVICES = the first G GPUs;
* as N local workers: `python -m launch.local --workers=N` on the same G
  GPUs, G / N each (N from `--process_counts`; default N = G, one GPU per
  worker).

Examples/s is the median over the run's train rows of
`model_dir/metrics.jsonl`, leaving out the first loop (tracing, warm-up).
Speedup is against the same model as one process on 1 GPU; scaling
efficiency is speedup / G (100 % is linear scaling).

Without a GPU, or with `--cpu_smoke`, it runs a tiny CPU configuration
instead (logical CPU devices stand in for GPUs: 1 and 2 devices as one
process, 2 processes of 1), which only shows that the script works.
"""

import dataclasses
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile

from absl import flags

from launch import devices
from trainer import layout

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Apart from absl's global FLAGS, like launch.local's own flags.
_FLAGS = flags.FlagValues()
_MODELS = flags.DEFINE_list("models", None, "Networks (default: mlp,cnn; the"
                            " CPU smoke: mlp).", flag_values=_FLAGS)
_GPUS = flags.DEFINE_list("gpus", None, "GPU counts (default: 1, 2, 4, ..."
                          " up to the visible GPUs).", flag_values=_FLAGS)
_PROCESS_COUNTS = flags.DEFINE_list(
    "process_counts", ["gpus"], "Local worker counts besides one process;"
    " 'gpus' is one worker per GPU; counts that do not divide G are"
    " skipped.", flag_values=_FLAGS)
_BATCH_PER_GPU = flags.DEFINE_integer(
    "batch_per_gpu", None, "Examples per GPU per step (default 256; the CPU"
    " smoke: 32).", flag_values=_FLAGS)
_TRAIN_STEPS = flags.DEFINE_integer(
    "train_steps", None, "Steps per run (default 1000; the CPU smoke: 40).",
    flag_values=_FLAGS)
_STEPS_PER_LOOP = flags.DEFINE_integer(
    "steps_per_loop", None, "Steps per metrics row (default 100; the CPU"
    " smoke: 10).", flag_values=_FLAGS)
_CPU_SMOKE = flags.DEFINE_boolean(
    "cpu_smoke", False, "Run the tiny CPU configuration even with GPUs.",
    flag_values=_FLAGS)
_WORK_DIR = flags.DEFINE_string(
    "work_dir", None, "Where the runs' model dirs go (default: a temporary"
    " directory, removed at the end).", flag_values=_FLAGS)
_TIMEOUT = flags.DEFINE_float("timeout", 1800.0, "Seconds per run.",
                              flag_values=_FLAGS)


@dataclasses.dataclass(frozen=True)
class Config:
  """One measured run: `devices` GPUs (or CPUs) over `processes`."""

  model: str
  devices: int
  processes: int

  def layout(self, unit: str) -> str:
    if self.processes == 1:
      kind = "one_device" if self.devices == 1 else "mirrored"
      return f"1 process ({kind})"
    share = self.devices // self.processes
    return f"{self.processes} workers x {share} {unit}"


def default_device_counts(available: int) -> list[int]:
  """1, 2, 4, ... up to `available`, and `available` itself."""
  counts = [1]
  while counts[-1] * 2 <= available:
    counts.append(counts[-1] * 2)
  return counts + ([available] if available > counts[-1] else [])


def plan(models: list[str], device_counts: list[int],
         process_counts: list[str]) -> list[Config]:
  """The runs: per model and G, one process, then each N that divides G."""
  configs = []
  for model in models:
    for count in device_counts:
      configs.append(Config(model, count, 1))
      workers = sorted({count if n == "gpus" else int(n)
                        for n in process_counts})
      configs += [Config(model, count, n) for n in workers
                  if 1 < n <= count and count % n == 0]
  return configs


def command(config: Config, *, smoke: bool, batch: int, steps: int,
            steps_per_loop: int, model_dir: str) -> list[str]:
  """The `python -m launch[.local]` command line of one run."""
  args = [f"--model={config.model}", "--dataset=synthetic",
          f"--global_batch_size={batch * config.devices}",
          f"--synthetic_eval_examples={batch * config.devices}",
          f"--train_steps={steps}", f"--steps_per_loop={steps_per_loop}",
          "--checkpoint_every=0", "--eval_every=0", "--progress=log",
          f"--model_dir={model_dir}"]
  share = config.devices // config.processes
  if smoke:
    args.append(f"--cpu_devices={share}")
  if config.processes > 1:
    return [sys.executable, "-m", "launch.local",
            f"--workers={config.processes}", *args]
  strategy = "one_device" if config.devices == 1 else "mirrored"
  return [sys.executable, "-m", "launch", f"--strategy={strategy}", *args]


def examples_per_sec(metrics_path: str) -> float:
  """Median examples/s of the train rows, the first (warm-up) loop left out."""
  with open(metrics_path, encoding="utf-8") as stream:
    rows = [json.loads(line) for line in stream if line.strip()]
  rates = [row["examples_per_sec"] for row in rows
           if row.get("split") == "train"]
  if not rates:
    raise RuntimeError(f"{metrics_path} has no train rows.")
  return statistics.median(rates[1:] or rates)


def _run(argv: list[str], env: dict[str, str], log_path: str) -> None:
  """Runs one command in its own process group; raises with its last lines."""
  with open(log_path, "w", encoding="utf-8") as log:
    process = subprocess.Popen(argv, env=env, cwd=REPO_ROOT, stdout=log,
                               stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
      returncode = process.wait(timeout=_TIMEOUT.value)
    except subprocess.TimeoutExpired:
      os.killpg(process.pid, signal.SIGKILL)  # The workers of launch.local.
      process.wait()
      returncode = "timeout"
  if returncode != 0:
    with open(log_path, encoding="utf-8") as log:
      tail = "".join(log.readlines()[-15:])
    raise RuntimeError(f"{' '.join(argv[1:])} failed ({returncode}):\n{tail}")


def measure(config: Config, *, smoke: bool, visible: list[str],
            work_dir: str, **sizes: int) -> float:
  """Examples/s of one run in a fresh model dir under `work_dir`."""
  run_dir = tempfile.mkdtemp(prefix=f"{config.model}-{config.devices}x"
                             f"{config.processes}-", dir=work_dir)
  model_dir = os.path.join(run_dir, "model")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
             PYTHONPATH=os.pathsep.join(
                 p for p in (REPO_ROOT, os.environ.get("PYTHONPATH")) if p))
  env.pop("TF_CONFIG", None)
  # "" hides the GPUs in the smoke; else the first G GPUs, which
  # launch.local splits among its workers.
  env[devices.VISIBLE_DEVICES] = ("" if smoke else
                                  ",".join(visible[:config.devices]))
  _run(command(config, smoke=smoke, model_dir=model_dir, **sizes), env,
       os.path.join(run_dir, "output.log"))
  return examples_per_sec(layout.ModelDir(model_dir).metrics_jsonl)


def table(results: list[tuple[Config, float]], *, unit: str) -> str:
  """Markdown: config, devices, processes, examples/s, speedup, efficiency."""
  lines = [f"| model | config | {unit}s | processes | examples/s | speedup"
           f" vs 1 {unit} | scaling efficiency |", "|" + " --- |" * 7]
  baseline = {c.model: rate for c, rate in results
              if c.devices == 1 and c.processes == 1}
  for config, rate in results:
    base = baseline.get(config.model)
    speedup = rate / base if base else float("nan")
    lines.append(f"| {config.model} | {config.layout(unit)} |"
                 f" {config.devices} | {config.processes} | {rate:,.0f} |"
                 f" {speedup:.2f} | {100 * speedup / config.devices:.0f} % |")
  return "\n".join(lines)


def main(argv: list[str]) -> int:
  try:
    _FLAGS(argv)
  except flags.Error as error:
    print(f"error: {error}.\n{_FLAGS.get_help()}", file=sys.stderr)
    return 2
  visible = devices.parse_visible_devices(
      os.environ.get(devices.VISIBLE_DEVICES),
      num_node_gpus=devices.count_node_gpus())
  smoke = _CPU_SMOKE.value or not visible
  unit = "CPU" if smoke else "GPU"
  models = _MODELS.value or (["mlp"] if smoke else ["mlp", "cnn"])
  counts = ([int(g) for g in _GPUS.value] if _GPUS.value else
            [1, 2] if smoke else default_device_counts(len(visible)))
  if not smoke and max(counts) > len(visible):
    print(f"error: --gpus asks for {max(counts)} GPUs but"
          f" {len(visible)} are visible.", file=sys.stderr)
    return 2
  sizes = {"batch": _BATCH_PER_GPU.value or (32 if smoke else 256),
           "steps": _TRAIN_STEPS.value or (40 if smoke else 1000),
           "steps_per_loop": _STEPS_PER_LOOP.value or (10 if smoke else 100)}
  if smoke:
    print("CPU smoke: logical CPU devices stand in for GPUs; these numbers"
          " say nothing about GPU scaling.", flush=True)
  with tempfile.TemporaryDirectory(prefix="gpu_scaling-") as scratch:
    work_dir = _WORK_DIR.value or scratch
    os.makedirs(work_dir, exist_ok=True)
    results = []
    for config in plan(models, counts, _PROCESS_COUNTS.value):
      try:
        rate = measure(config, smoke=smoke, visible=visible,
                       work_dir=work_dir, **sizes)
      except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
      print(f"{config.model}, {config.layout(unit)}: {rate:,.0f} examples/s",
            file=sys.stderr, flush=True)
      results.append((config, rate))
  print(table(results, unit=unit))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
