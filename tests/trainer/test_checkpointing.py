"""Checkpoint integrity: fallback, lost state files, orphans, all-corrupt."""

import os

import keras
import pytest
import tensorflow as tf

from trainer import checkpointing


def make_checkpointer(directory, *, is_chief=True, value=0.0):
  model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
  model.optimizer = keras.optimizers.SGD()
  model.optimizer.build(model.trainable_variables)
  model.layers[0].kernel.assign(tf.fill((2, 1), value))
  step = tf.Variable(0, dtype=tf.int64)
  checkpointer = checkpointing.Checkpointer(
      checkpointing.build_checkpoint(model, step), step,
      directory=str(directory), is_chief=is_chief, max_to_keep=5)
  return checkpointer, model


def kernel(model):
  return float(model.layers[0].kernel.numpy()[0, 0])


@pytest.fixture
def three_checkpoints(tmp_path):
  """Checkpoints at steps 10, 20, 30 whose kernel equals the step."""
  for step in (10, 20, 30):
    checkpointer, _ = make_checkpointer(tmp_path, value=float(step))
    checkpointer.save(step)
  return tmp_path


def test_restores_the_newest(three_checkpoints):
  checkpointer, model = make_checkpointer(three_checkpoints)
  assert checkpointer.restore_latest() == 30
  assert kernel(model) == 30.0


def test_truncated_newest_falls_back_to_the_previous(three_checkpoints,
                                                     caplog):
  data = three_checkpoints / "ckpt-30.data-00000-of-00001"
  data.write_bytes(data.read_bytes()[:10])
  checkpointer, model = make_checkpointer(three_checkpoints)
  assert checkpointer.restore_latest() == 20
  assert kernel(model) == 20.0


def test_missing_index_is_skipped(three_checkpoints):
  os.remove(three_checkpoints / "ckpt-30.index")
  checkpointer, _ = make_checkpointer(three_checkpoints)
  assert checkpointer.restore_latest() == 20


@pytest.mark.parametrize("damage", ["delete", "garbage"])
def test_lost_state_file_does_not_restart_from_zero(three_checkpoints,
                                                    damage):
  state = three_checkpoints / "checkpoint"
  if damage == "delete":
    state.unlink()
  else:
    state.write_text("this is not a checkpoint state {{{")
  assert tf.train.latest_checkpoint(str(three_checkpoints)) is None or (
      damage == "garbage")
  checkpointer, model = make_checkpointer(three_checkpoints)
  assert checkpointer.restore_latest() == 30
  assert kernel(model) == 30.0
  # The chief rebuilt the state file, so TensorFlow's tools agree again.
  assert tf.train.latest_checkpoint(str(three_checkpoints)).endswith("ckpt-30")


def test_orphaned_temp_dirs_are_removed(three_checkpoints):
  orphan = three_checkpoints / "ckpt-40_temp"
  orphan.mkdir()
  (orphan / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x")
  make_checkpointer(three_checkpoints)
  assert not orphan.exists()
  make_checkpointer(three_checkpoints / "elsewhere", is_chief=False)


def test_all_corrupt_raises_instead_of_restarting(three_checkpoints):
  for step in (10, 20, 30):
    (three_checkpoints / f"ckpt-{step}.data-00000-of-00001").write_bytes(b"")
  checkpointer, _ = make_checkpointer(three_checkpoints)
  with pytest.raises(checkpointing.CheckpointError,
                     match="none of the 3 checkpoints"):
    checkpointer.restore_latest()


def test_no_checkpoint_starts_at_zero(tmp_path):
  checkpointer, _ = make_checkpointer(tmp_path)
  assert checkpointer.restore_latest() == 0


def test_a_new_save_never_deletes_the_last_good_one_first(three_checkpoints):
  checkpointer, _ = make_checkpointer(three_checkpoints)
  checkpointer._manager._max_to_keep = 1  # pylint: disable=protected-access
  checkpointer.save(40)
  names = sorted(os.listdir(three_checkpoints))
  assert "ckpt-40.index" in names and "ckpt-30.index" not in names
