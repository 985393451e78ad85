"""A one-process reference run that multi-process runs must reproduce."""

import pytest

from datasets.config import DataConfig
from launch.options import resolve as config_lib
from tests import checkpoints
from tests.training import run_config
from trainer.config import TrainConfig

STEPS = 100
FLAGS = [f"--train_steps={STEPS}", "--global_batch_size=64",
         "--steps_per_loop=25", "--checkpoint_every=50", "--eval_every=50"]


@pytest.fixture(scope="session")
def one_process_reference(tmp_path_factory):
  """Weights after FLAGS' run on one process with 2 mirrored replicas."""
  model_dir = tmp_path_factory.mktemp("reference")
  config = config_lib.RunConfig(
      data=DataConfig(global_batch_size=64),
      train=TrainConfig(model_dir=str(model_dir), train_steps=STEPS,
                        steps_per_loop=25, checkpoint_every=50, eval_every=50),
      cpu_devices=2)
  run_config(config)
  return checkpoints.restored_weights(model_dir / "checkpoints",
                                      expected_step=STEPS)
