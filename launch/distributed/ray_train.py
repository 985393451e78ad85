"""Ray Train and Ray Tune see the run: its evaluations and its checkpoints.

Inside a Ray Train worker (`TensorflowTrainer`'s `train_loop_per_worker`
calling `launch.fit`) or a Ray Tune function trainable calling `fit`, the
run reports every evaluation to Ray with no code from you:
`ray.train.report` (or `ray.tune.report`) with the evaluation's metrics
(the names of `metrics.jsonl` and of `fit`'s result: "loss", each metric,
"examples"; without eval data the training loop's), "step" and, with
`epochs`, "epoch"; and, from the chief only, a copy of the harness's newest
checkpoint when it is newer than the one reported before. The final result
is reported once at the end, with the final checkpoint, so Ray's
`Result.metrics` and `Result.checkpoint` hold them.

Ray Train's `report` is a barrier: every worker calls it, the same number of
times. An evaluation is reported at the start of the next loop (after the
checkpoint of that boundary was saved) or at the end: every worker passes
the same boundaries, so every worker reports the same number of times.

Ray is never imported here unless the process already imported it (a Ray
worker has): the harness runs without Ray installed.
"""

import math
import os
import shutil
import sys
import tempfile

from absl import logging

_STATE_FILE = "checkpoint"  # tf.train's state file: the newest prefix.


def ray_session() -> str | None:
  """The Ray session: "train" (a Ray Train worker), "tune" or None.

  Cheap outside Ray: only a process that imported `ray` can be either.
  """
  if "ray" not in sys.modules:
    return None
  # pylint: disable=import-outside-toplevel,protected-access
  try:  # Ray's own checks (private in Ray 2.60; its public calls raise).
    from ray.train.v2._internal import util as train_util
    if train_util._in_ray_train_worker():
      return "train"
    from ray.tune.trainable import trainable_fn_utils
    if trainable_fn_utils._in_tune_session():
      return "tune"
  except (ImportError, AttributeError):  # Another Ray than 2.60's layout.
    logging.warning("this Ray's version is not one the harness reports to"
                    " (checked with ray 2.60); Ray sees no metrics.")
  return None


def copy_checkpoint(prefix: str, directory: str) -> None:
  """Copies the checkpoint `prefix` (".../ckpt-N") into `directory`.

  With tf.train's state file naming it, so the copy is a checkpoints
  directory `fit`'s `init_checkpoint` (or a model_dir's `checkpoints/`)
  takes.
  """
  source_dir, name = os.path.split(prefix)
  for entry in os.listdir(source_dir):
    if entry.startswith(name + "."):
      shutil.copy2(os.path.join(source_dir, entry), directory)
  with open(os.path.join(directory, _STATE_FILE), "w",
            encoding="utf-8") as stream:
    stream.write(f'model_checkpoint_path: "{name}"\n'
                 f'all_model_checkpoint_paths: "{name}"\n')


def build_reporter(plan):
  """The callback reporting to Ray, or None outside Ray.

  Args:
    plan: The run's `launch.run.plan.Plan`.
  """
  session = ray_session()
  if session is None:
    return None
  # pylint: disable-next=import-outside-toplevel
  from launch.distributed import ray_callback
  config = plan.config
  num_examples = getattr(plan.train_source, "num_examples", None)
  # As `epochs` sets eval_every: an evaluation per epoch is epoch 1, 2...
  steps_per_epoch = (math.ceil(num_examples / config.data.global_batch_size)
                     if config.epochs is not None and num_examples else None)
  if session == "train":
    import ray.train  # pylint: disable=import-outside-toplevel
    report = ray.train.report
    rank = ray.train.get_context().get_world_rank()
    if (rank == 0) != plan.cluster.is_chief:  # Ray's TF_CONFIG says so.
      logging.warning("Ray's rank 0 is not the harness's chief; the"
                      " checkpoints reported are the chief's.")
  else:
    import ray.tune  # pylint: disable=import-outside-toplevel
    report = ray.tune.report
  return ray_callback.RayReport(
      report=report, checkpoint_class=_checkpoint_class(session),
      checkpoints_dir=_checkpoints_dir(config.train.model_dir),
      is_chief=plan.cluster.is_chief, steps_per_epoch=steps_per_epoch)


def _checkpoint_class(session: str):
  if session == "train":
    import ray.train  # pylint: disable=import-outside-toplevel
    return ray.train.Checkpoint
  import ray.tune  # pylint: disable=import-outside-toplevel
  return ray.tune.Checkpoint


def _checkpoints_dir(model_dir: str) -> str:
  from trainer import layout  # pylint: disable=import-outside-toplevel
  return layout.ModelDir(model_dir).checkpoints


def temporary_copy(prefix: str) -> str:
  """A new temporary directory holding a copy of checkpoint `prefix`."""
  directory = tempfile.mkdtemp(prefix="tfharness-ray-checkpoint-")
  copy_checkpoint(prefix, directory)
  return directory
