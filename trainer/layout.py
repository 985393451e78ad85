"""`ModelDir`: the one owner of the model_dir layout.

  model_dir/
    .lock                 held by the training run's chief (one run per dir)
    config.json           the run's settings (resume-compatibility check)
    checkpoints/          ckpt-N.* and the `checkpoint` state file
    best_checkpoint/      with keep_best_checkpoint
    summaries/            TensorBoard's HParams session (trainer.tensorboard)
    summaries/train/      TensorBoard scalars of the train loops, model, graph
    summaries/eval/       TensorBoard scalars of the in-training evaluations
    summaries/evaluate/   those of an evaluation-only run (mode evaluate)
    metrics.jsonl         one JSON row per train loop and evaluation
    metrics.csv           one row per evaluation: train means + val_ metrics
    evaluate.csv          one row per checkpoint an evaluation-only run scored
    export/               SavedModel (serve) + model.keras
    logs/worker-N.log     launch.local's per-worker logs

Everything that reads or writes one of these paths asks this object.
"""

import dataclasses
import os


@dataclasses.dataclass(frozen=True)
class ModelDir:
  """Paths inside one model_dir."""

  root: str

  def _path(self, *parts: str) -> str:
    return os.path.join(self.root, *parts)

  @property
  def lock(self) -> str:
    return self._path(".lock")

  @property
  def config(self) -> str:
    return self._path("config.json")

  @property
  def checkpoints(self) -> str:
    return self._path("checkpoints")

  @property
  def best_checkpoint(self) -> str:
    return self._path("best_checkpoint")

  @property
  def summaries(self) -> str:
    return self._path("summaries")

  def split_summaries(self, split: str) -> str:
    """TensorBoard directory of "train" or "eval" (and the profiler's)."""
    return self._path("summaries", split)

  @property
  def metrics_jsonl(self) -> str:
    return self._path("metrics.jsonl")

  @property
  def metrics_csv(self) -> str:
    return self._path("metrics.csv")

  @property
  def evaluate_csv(self) -> str:
    return self._path("evaluate.csv")

  @property
  def export(self) -> str:
    return self._path("export")

  @property
  def logs(self) -> str:
    return self._path("logs")

  def worker_log(self, index: int) -> str:
    return self._path("logs", f"worker-{index}.log")
