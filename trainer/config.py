"""The frozen training configuration that `launch` hands to `trainer`."""

import dataclasses

MODEL_NAMES = ("mlp", "cnn", "functional", "subclassed", "rnn", "two_head")
OPTIMIZER_NAMES = ("adam", "adamw", "sgd", "rmsprop")
LOSS_NAMES = ("sparse_categorical_crossentropy", "categorical_crossentropy",
              "binary_crossentropy", "mse")
METRIC_NAMES = ("accuracy", "precision", "recall", "auc", "mse", "mae")
REGRESSION_METRICS = ("mae", "mse")  # The metrics of a loss of mse.
PRECISION_POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
LR_SCHEDULES = ("constant", "warmup_cosine", "step_decay")
MONITOR_MODES = ("auto", "min", "max")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
  """How to build the model and run the loop.

  Attributes:
    model: Built-in network name (one of `MODEL_NAMES`).
    optimizer: Optimizer name (one of `OPTIMIZER_NAMES`).
    learning_rate: The learning rate.
    momentum: Momentum of SGD.
    weight_decay: Decoupled weight decay of AdamW.
    l2: L2 regularization factor of the built-in networks' kernels.
    train_steps: Total number of training steps (the resolved run length).
    steps_per_loop: Steps per `tf.function` call; logs are written per loop.
    eval_every: Evaluate every this many steps (0: only at the end).
    checkpoint_every: Save every this many steps (0: only at the end).
    keep_checkpoints: How many checkpoints to keep.
    model_dir: Where checkpoints, summaries, metrics and the export go.
    jit_compile: Compile the step with XLA.
    loss: Loss name (one of `LOSS_NAMES`).
    from_logits: Whether the network emits logits (else probabilities).
    metrics: Metric names (from `METRIC_NAMES`).
    dropout: Dropout rate of the built-ins with dropout (cnn, functional,
      subclassed; 0 makes replicas exactly equivalent).
    sync_batchnorm: Batch statistics over the global batch, not per replica.
    mixed_precision: Keras dtype policy of the network.
    clip_norm: Clip the all-reduced gradient to this global norm (0: off).
    accumulate_steps: Split each replica's batch into this many
      micro-batches whose gradients are summed before one update.
    lr_schedule: One of `LR_SCHEDULES`.
    warmup_steps: warmup_cosine: linear warmup from 0 over these steps,
      then cosine decay to 0 at `train_steps`.
    decay_steps: step_decay: multiply the rate by `decay_rate` every this
      many steps.
    decay_rate: step_decay factor.
    monitor: Eval metric watched by early stopping, the plateau rule and
      the best checkpoint.
    monitor_mode: "min", "max" or "auto" (max for accuracy-like metrics).
    early_stopping_patience: Stop after this many evaluations without
      improvement (0: off).
    restore_best_weights: On an early stop, go back to the best weights.
    plateau_patience: Multiply the learning rate by `plateau_factor` after
      this many evaluations without improvement (0: off).
    plateau_factor: The factor.
    plateau_min_lr: The rate never goes below this.
    keep_best_checkpoint: Save `model_dir/best_checkpoint` on improvement.
    profile_steps: (a, b): trace steps a..b with the TensorFlow profiler.
    output_losses: For a multi-output model: (output, loss name) pairs;
      they replace `loss`.
    loss_weights: (output, weight) pairs; outputs not named weigh 1.
    nan_retries: On a non-finite loss, roll back to the newest finite
      checkpoint and halve the learning rate, up to this many times (0:
      stop at once).
  """

  model: str = "mlp"
  optimizer: str = "adam"
  learning_rate: float = 3e-3
  momentum: float = 0.9
  weight_decay: float = 0.004
  l2: float = 0.0
  train_steps: int = 1000
  steps_per_loop: int = 50
  eval_every: int = 0
  checkpoint_every: int = 500
  keep_checkpoints: int = 3
  model_dir: str = ""
  jit_compile: bool = False
  loss: str = "sparse_categorical_crossentropy"
  from_logits: bool = True
  metrics: tuple[str, ...] = ("accuracy",)
  dropout: float = 0.25
  sync_batchnorm: bool = False
  mixed_precision: str = "float32"
  clip_norm: float = 0.0
  accumulate_steps: int = 1
  lr_schedule: str = "constant"
  warmup_steps: int = 0
  decay_steps: int = 1000
  decay_rate: float = 0.5
  monitor: str = "loss"
  monitor_mode: str = "auto"
  early_stopping_patience: int = 0
  restore_best_weights: bool = False
  plateau_patience: int = 0
  plateau_factor: float = 0.5
  plateau_min_lr: float = 0.0
  keep_best_checkpoint: bool = False
  profile_steps: tuple[int, int] | None = None
  output_losses: tuple[tuple[str, str], ...] = ()
  loss_weights: tuple[tuple[str, float], ...] = ()
  nan_retries: int = 0
