"""Ray Train against `launch.local`: start-up and examples/s, 2 workers each.

  python -m benchmarks.ray_vs_local             # MLP 784-64-10, batch 256

Runs, interleaved round by round so machine noise hits both alike, the same
`fit` call (this module's `train`: synthetic MNIST-sized data, an MLP,
global batch 256) on

* `python -m launch.local --workers=N` (N local workers), and
* N Ray Train workers (`launch.ray.TensorflowTrainer`), the driver starting
  its own local Ray on loopback as on a laptop (or joining `RAY_ADDRESS`).

Start-up: from the command's start to the end of the first loop (the first
train row of `metrics.jsonl`: `--steps_per_loop` steps, tracing included).
Examples/s: the median of the train rows after `--warmup_loops`. Prints a
table and, with `--output`, writes JSON.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train(config: dict) -> None:
  """One worker's `fit` (the same on both launchers)."""
  import keras  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from datasets import from_arrays  # pylint: disable=import-outside-toplevel
  from launch import fit  # pylint: disable=import-outside-toplevel

  def model_fn():
    inputs = keras.Input(shape=(784,))
    hidden = keras.layers.Dense(64, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(10)(hidden))

  features = np.random.RandomState(0).rand(8192, 784).astype("float32")
  labels = np.random.RandomState(1).randint(0, 10, 8192)
  fit(model_fn, from_arrays(features, labels), global_batch_size=256,
      progress="log", **config)


def _config(args, model_dir: str) -> dict:
  return dict(model_dir=model_dir, train_steps=args.train_steps,
              steps_per_loop=args.steps_per_loop, eval_every=0,
              checkpoint_every=args.train_steps)


def _ray_driver(args) -> None:
  """This module as the Ray driver (`--as_ray_driver`)."""
  import launch.ray  # pylint: disable=import-outside-toplevel
  import ray  # pylint: disable=import-outside-toplevel
  # pylint: disable-next=import-outside-toplevel
  from ray.train import RunConfig, ScalingConfig
  if not os.environ.get("RAY_ADDRESS"):
    ray.init(address="local", include_dashboard=False,
             num_cpus=args.workers, object_store_memory=80 * 2**20)
  launch.ray.TensorflowTrainer(
      train, train_loop_config=_config(args, args.model_dir),
      scaling_config=ScalingConfig(num_workers=args.workers),
      run_config=RunConfig(storage_path=args.model_dir + "-ray")).fit()


def _local_worker(args) -> None:
  """This module as one `launch.local` worker (`--as_local_worker`)."""
  train(_config(args, args.model_dir))


def _timed(command: list[str], model_dir: str) -> dict:
  """Runs `command`; start-up and examples/s from its metrics.jsonl."""
  env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
             PYTHONPATH=os.pathsep.join(
                 p for p in (_REPO_ROOT, os.environ.get("PYTHONPATH")) if p))
  started = time.time()
  result = subprocess.run(command, env=env, cwd=_REPO_ROOT,
                          capture_output=True, text=True, check=False)
  if result.returncode:
    raise RuntimeError(f"{command} failed:\n{result.stderr[-3000:]}")
  with open(os.path.join(model_dir, "metrics.jsonl"), encoding="utf-8") as f:
    rows = [row for row in map(json.loads, f) if row["split"] == "train"]
  return {"startup_s": rows[0]["time"] - started, "rows": rows,
          "wall_s": time.time() - started}


def _examples_per_sec(rows: list, warmup_loops: int) -> float:
  rates = [row["examples_per_sec"] for row in rows[warmup_loops:]]
  return statistics.median(rates or [rows[-1]["examples_per_sec"]])


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workers", type=int, default=2)
  parser.add_argument("--train_steps", type=int, default=1500)
  parser.add_argument("--steps_per_loop", type=int, default=50)
  parser.add_argument("--warmup_loops", type=int, default=3)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--output", default="")
  parser.add_argument("--model_dir", default="")
  parser.add_argument("--as_ray_driver", action="store_true")
  parser.add_argument("--as_local_worker", action="store_true")
  args = parser.parse_args(argv)
  if args.as_ray_driver:
    return _ray_driver(args)
  if args.as_local_worker:
    return _local_worker(args)
  shared = [f"--workers={args.workers}", f"--train_steps={args.train_steps}",
            f"--steps_per_loop={args.steps_per_loop}"]
  this = os.path.abspath(__file__)
  runs = {"launch.local": [], "ray": []}
  with tempfile.TemporaryDirectory() as root:
    for round_index in range(args.rounds):
      local_dir = os.path.join(root, f"local-{round_index}")
      runs["launch.local"].append(_timed(
          [sys.executable, "-m", "launch.local", f"--workers={args.workers}",
           this, "--as_local_worker", f"--model_dir={local_dir}", *shared],
          local_dir))
      ray_dir = os.path.join(root, f"ray-{round_index}")
      runs["ray"].append(_timed(
          [sys.executable, this, "--as_ray_driver", f"--model_dir={ray_dir}",
           *shared], ray_dir))
  summary = {
      name: {"startup_s": statistics.median(r["startup_s"] for r in found),
             "examples_per_sec": statistics.median(
                 _examples_per_sec(r["rows"], args.warmup_loops)
                 for r in found),
             "wall_s": statistics.median(r["wall_s"] for r in found)}
      for name, found in runs.items()}
  print(f"{args.workers} workers, MLP 784-64-10, batch 256,"
        f" {args.train_steps} steps, {args.rounds} interleaved round(s):")
  print(f"{'launcher':<14}{'to first loop (s)':>19}{'examples/s':>12}"
        f"{'whole run (s)':>15}")
  for name, numbers in summary.items():
    print(f"{name:<14}{numbers['startup_s']:>19.1f}"
          f"{numbers['examples_per_sec']:>12,.0f}{numbers['wall_s']:>15.1f}")
  if args.output:
    with open(args.output, "w", encoding="utf-8") as stream:
      json.dump(summary, stream, indent=2)
  return summary


if __name__ == "__main__":
  main()
