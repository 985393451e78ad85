"""`RunConfig`: the frozen settings of one run, as plain values.

Beside `trainer.config.TrainConfig` and `datasets.config.DataConfig`, which
it holds. The fields' defaults are the options' defaults
(`launch.options.definitions`); nothing here imports TensorFlow.
"""

import dataclasses
import json

from datasets.config import DEFAULT_IMAGE_SIZE, DataConfig
from trainer.config import TrainConfig

MODES = ("train", "evaluate")
PROGRESS_KINDS = ("auto", "bar", "log", "none")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunConfig:
  """Everything one run needs, as plain values.

  Attributes:
    data: Handed to `datasets` (`data.seed` is the run's one seed).
    train: Handed to `trainer`; `train.train_steps` is final once
      `resolve_train_steps` ran.
    epochs: If set, the run length in passes over the training data.
    strategy: One of `STRATEGY_KINDS`.
    cpu_devices: Logical CPU devices per process when there is no GPU.
    collective_timeout: Seconds one compiled multi-worker call may take
      before the worker gives up on its peers (0: never).
    startup_timeout: Seconds the workers may take to join (0: forever).
    gpu_memory: "auto", "growth", "all" or a per-GPU limit in MB.
    deterministic: Enable TensorFlow's op determinism.
    heartbeat_file: Where to record progress for a supervisor, or None.
    mode: One of `MODES`.
    watch: Evaluate each new checkpoint until the final step.
    eval_timeout: Seconds a watching evaluator waits for a new checkpoint.
    allow_config_change: Resume even if model_dir's config.json disagrees
      on what the checkpoint means.
    init_checkpoint: Start a new model_dir from this checkpoint (a prefix,
      or another run's model_dir); "" for none.
    init_optimizer: With `init_checkpoint`, also take its optimizer state.
    progress: One of `PROGRESS_KINDS` (the chief's display).
    verbose: Show TensorFlow's own start-up and INFO log lines too.
    slurm_port_base: Under srun, task i of a node listens on this + i.
    train_data: Path of the user's training data (replaces `data.name`).
    eval_data: Path of the user's eval data.
    label_column: CSV: the label's column.
    image_size: Image directories: (height, width) after resizing.
    task: "auto", "classification" or "regression"; the plan resolves
      "auto" from the data (config.json records the resolved task).
    skip_unreadable: Image directories: leave out unreadable files.
  """

  data: DataConfig
  train: TrainConfig
  epochs: float | None = None
  strategy: str = "auto"
  cpu_devices: int = 1
  collective_timeout: float = 300.0
  startup_timeout: float = 900.0
  gpu_memory: str = "auto"
  deterministic: bool = False
  heartbeat_file: str | None = None
  mode: str = "train"
  watch: bool = False
  eval_timeout: float = 3600.0
  allow_config_change: bool = False
  init_checkpoint: str = ""
  init_optimizer: bool = False
  progress: str = "auto"
  verbose: bool = False
  slurm_port_base: int = 8888
  train_data: str | None = None
  eval_data: str | None = None
  label_column: str | None = None
  image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE
  task: str = "auto"
  skip_unreadable: bool = False

  @property
  def seed(self) -> int:
    """Seed of the weights, the data order and augmentation (one field)."""
    return self.data.seed

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)
