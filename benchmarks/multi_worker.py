"""Throughput across workers: N local workers against one process.

  python -m benchmarks.multi_worker            # MLP, synthetic, batch 256

Runs, interleaved round by round so machine noise hits both alike:

* one process mirroring over `--workers` logical CPUs (`python -m launch
  --cpu_devices=N`), and
* `--workers` local workers of one CPU each (`python -m launch.local`),

same model, data and global batch. Examples/s is the median of the train
rows of `metrics.jsonl` after the first `--warmup_loops` (tracing). One more
multi-worker run records a TensorFlow profiler trace of `--profile_steps`
steps on the chief, from which it counts the collectives per step (the
`CollectiveReduce` ops inside the `train` step markers; the harness runs
profiled steps one per call) and the share of the marked step time they
take. Prints a table and, with `--output`, writes JSON.
"""

import collections
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile

from absl import app
from absl import flags
from trainer import layout

_WORKERS = flags.DEFINE_integer("workers", 2, "Workers (and logical CPUs).")
_MODEL = flags.DEFINE_string("model", "mlp", "Built-in model.")
_BATCH = flags.DEFINE_integer("global_batch_size", 256, "Global batch.")
_STEPS = flags.DEFINE_integer("train_steps", 1500, "Steps per run.")
_STEPS_PER_LOOP = flags.DEFINE_integer("steps_per_loop", 50, "Steps per call.")
_WARMUP_LOOPS = flags.DEFINE_integer("warmup_loops", 3, "Loops left out.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Interleaved rounds (median).")
_PROFILE_STEPS = flags.DEFINE_integer("profile_steps", 100,
                                      "Steps in the profiled run's trace.")
_OUTPUT = flags.DEFINE_string("output", None, "Also write results as JSON.")

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(module_args: list[str], extra: list[str]) -> str:
  """Runs one training command in a fresh model_dir; returns the dir."""
  model_dir = tempfile.mkdtemp(prefix="tfharness-bench-")
  command = [sys.executable, "-m", *module_args, f"--model={_MODEL.value}",
             "--dataset=synthetic", f"--global_batch_size={_BATCH.value}",
             f"--steps_per_loop={_STEPS_PER_LOOP.value}",
             "--checkpoint_every=0", "--progress=log",
             f"--model_dir={model_dir}", *extra]
  result = subprocess.run(command, cwd=_REPO, capture_output=True, text=True,
                          check=False)
  if result.returncode:
    raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}"
                       f"\n{result.stderr[-2000:]}")
  return model_dir


def _examples_per_sec(model_dir: str) -> float:
  rows = [json.loads(line) for line in
          open(layout.ModelDir(model_dir).metrics_jsonl, encoding="utf-8")]
  rates = [row["examples_per_sec"] for row in rows
           if row.get("split") == "train"][_WARMUP_LOOPS.value:]
  return statistics.median(rates)


def _one_process() -> float:
  return _examples_per_sec(_run(
      ["launch"], [f"--cpu_devices={_WORKERS.value}",
                   f"--train_steps={_STEPS.value}"]))


def _local_workers(extra=()) -> str:
  return _run(["launch.local", f"--workers={_WORKERS.value}"],
              [f"--train_steps={_STEPS.value}", *extra])


def collective_profile(trace_path: str) -> dict:
  """Collectives per training step and their time, from a profiler trace.

  The harness runs the profiled steps one per call, each inside a `train`
  step marker; collectives that start inside a marker belong to a step
  (those after it, such as the per-loop metric read, do not).
  """
  from tensorflow.tsl.profiler.protobuf import xplane_pb2  # Heavy import.
  space = xplane_pb2.XSpace()
  with open(trace_path, "rb") as stream:
    space.ParseFromString(stream.read())
  steps, collectives = [], []  # (start ps, duration ps[, name])
  for plane in space.planes:
    names = {key: meta.name for key, meta in plane.event_metadata.items()}
    for line in plane.lines:
      for event in line.events:
        name = names.get(event.metadata_id, "")
        start = line.timestamp_ns * 1000 + event.offset_ps
        if name == "train":
          steps.append((start, event.duration_ps))
        elif ":CollectiveReduce" in name:
          collectives.append((start, event.duration_ps, name))
  counts, picoseconds = collections.Counter(), collections.Counter()
  for start, duration, name in collectives:
    if any(first <= start < first + length for first, length in steps):
      counts[name] += 1
      picoseconds[name] += duration
  num_steps = max(len(steps), 1)
  return {"collectives_per_step": sum(counts.values()) / num_steps,
          "collective_ms_per_step": sum(picoseconds.values()) / 1e9
                                    / num_steps,
          "step_ms": sum(length for _, length in steps) / 1e9 / num_steps,
          "profiled_steps": len(steps),
          "ops": {name.split(":")[0]: count for name, count in counts.items()}}


def _profiled_run() -> dict:
  first = _STEPS.value // 2 + 1
  last = first + _PROFILE_STEPS.value - 1
  model_dir = _local_workers([f"--profile_steps={first},{last}"])
  traces = glob.glob(os.path.join(layout.ModelDir(model_dir).split_summaries("train"), "plugins",
                                  "profile", "*", "*.xplane.pb"))
  profile = collective_profile(traces[0])
  profile["collective_share"] = (profile["collective_ms_per_step"]
                                 / profile["step_ms"])
  return profile


def main(argv: list[str]) -> None:
  del argv
  one, many = [], []
  for _ in range(_ROUNDS.value):
    one.append(_one_process())
    many.append(_examples_per_sec(_local_workers()))
  result = {"model": _MODEL.value, "workers": _WORKERS.value,
            "global_batch_size": _BATCH.value,
            "one_process": statistics.median(one),
            "local_workers": statistics.median(many),
            "rounds": {"one_process": one, "local_workers": many},
            **_profiled_run()}
  result["ratio"] = result["local_workers"] / result["one_process"]
  n = _WORKERS.value
  print(f"| {_MODEL.value}, batch {_BATCH.value} | examples/s |\n| --- | --- |"
        f"\n| 1 process x {n} logical CPUs | {result['one_process']:,.0f} |"
        f"\n| {n} workers x 1 CPU | {result['local_workers']:,.0f} |"
        f"\n| ratio | {result['ratio']:.2f} |\n"
        f"\nCollectives per profiled step (one step per call):"
        f" {result['collectives_per_step']:.2f}"
        f" ({', '.join(f'{op} x{count}' for op, count in result['ops'].items())});"
        f" {result['collective_ms_per_step']:.2f} ms of a"
        f" {result['step_ms']:.2f} ms step (in the trace)"
        f" ({100 * result['collective_share']:.0f} %).")
  if _OUTPUT.value:
    with open(_OUTPUT.value, "w", encoding="utf-8") as stream:
      json.dump(result, stream, indent=2)


if __name__ == "__main__":
  app.run(main)
