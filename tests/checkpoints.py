"""Reading a run's checkpoint back the way a restarted run does."""

import tensorflow as tf

from trainer import build
from trainer import checkpointing
from trainer.config import TrainConfig


def restored_weights(checkpoint_dir, *, expected_step: int,
                     input_shape=(8, 8, 1), num_classes=10,
                     **train_config) -> list:
  """Restores the latest checkpoint into a fresh model; returns its weights."""
  model = build.build_model(TrainConfig(**train_config),
                            tf.distribute.get_strategy(),
                            input_shape=input_shape, num_classes=num_classes)
  step = tf.Variable(0, dtype=tf.int64)
  checkpointing.build_checkpoint(model, step).restore(
      tf.train.latest_checkpoint(str(checkpoint_dir))).assert_consumed()
  assert int(step.numpy()) == expected_step
  return [weight.numpy() for weight in model.network.weights]


def list_steps(checkpoint_dir) -> list[int]:
  """Steps of the checkpoint files present (none if the dir is missing)."""
  return [step for step, _ in checkpointing.list_checkpoints(
      str(checkpoint_dir))]


def checkpoint_arrays(checkpoint_dir) -> dict:
  """Every saved tensor of the latest checkpoint, by name (any model).

  Leaves out `save_counter`: how many saves a directory saw, not state.
  """
  reader = tf.train.load_checkpoint(
      tf.train.latest_checkpoint(str(checkpoint_dir)))
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()
          if name.endswith("VARIABLE_VALUE")
          and not name.startswith("save_counter")}


def max_checkpoint_difference(first_dir, second_dir) -> float:
  """Largest difference between two checkpoints of the same model."""
  first, second = checkpoint_arrays(first_dir), checkpoint_arrays(second_dir)
  assert first.keys() == second.keys() and first
  return max(float(abs(first[name].astype("float64")
                       - second[name].astype("float64")).max())
             for name in first)
