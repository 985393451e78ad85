"""In-process training on small data for tests: weights and logs."""

import dataclasses

import keras

from datasets import catalogue
from tests.conftest import make_strategy
from trainer import build
from trainer import config as config_lib
from trainer import runner as runner_lib


@dataclasses.dataclass
class Trained:
  weights: list
  logs: dict
  model: object
  runner: runner_lib.Runner


def train(num_replicas: int, *, steps: int, global_batch_size: int = 32,
          source=None, model_class=None,
          eval_batch_size: int | None = None, eval_steps_per_call: int = 0,
          **train_config) -> Trained:
  """Builds (seed 1) and trains a model; `steps=0` only builds it.

  `source` is a (train, eval) pair of Sources; digits by default.
  """
  train_source, eval_source = source or catalogue.load_digits()
  strategy = make_strategy(num_replicas)
  keras.utils.set_random_seed(1)
  config = config_lib.TrainConfig(**train_config)
  model = build.build_model(
      config, strategy, input_shape=train_source.input_shape,
      num_classes=train_source.num_classes,
      **({"model_class": model_class} if model_class else {}))
  eval_batch_size = eval_batch_size or global_batch_size
  eval_dataset_fn, eval_steps = eval_source.eval_dataset_fn(
      global_batch_size=eval_batch_size)
  runner = runner_lib.Runner(
      strategy=strategy, model=model,
      train_dataset_fn=train_source.train_dataset_fn(
          global_batch_size=global_batch_size, seed=0),
      eval_dataset_fn=eval_dataset_fn, eval_steps=eval_steps,
      eval_steps_per_call=eval_steps_per_call)
  logs = runner.train(steps) if steps else {}
  return Trained([w.numpy() for w in model.network.weights], logs, model,
                 runner)


def max_difference(first: list, second: list) -> float:
  assert len(first) == len(second) and first
  return max(float(abs(a - b).max()) for a, b in zip(first, second))


def run_config(config, cluster=None, **plan_options) -> dict:
  """Plans and runs a RunConfig in this process; final eval logs + "step"."""
  from launch.distributed import cluster as cluster_lib
  from launch.run import plan as plan_lib
  from launch.run import execute as run_lib
  plan = plan_lib.plan_run(config, cluster or cluster_lib.ClusterInfo(),
                           **plan_options)
  result = run_lib.execute(plan)
  return dict(result.logs, step=result.step)


def config_from_flags(args: list[str]):
  """The RunConfig `python -m launch ARGS` would build (flags restored)."""
  from absl import flags
  from absl.testing import flagsaver
  from launch.options import resolve as config_lib
  from launch.cli import flags as flag_defs
  with flagsaver.flagsaver():
    flags.FLAGS(["launch", *args])
    values = flag_defs.values()
    given = {name: values[name] for name in flag_defs.given()}
  return config_lib.from_options(config_lib.resolve_options(given))
