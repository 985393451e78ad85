"""Every option of a run, defined once: name, default, group and help.

The command-line flags (`launch.cli.flags`), the keyword arguments of
`launch.fit` and `config.json` all follow from `OPTIONS`. An option that
maps onto a field of `TrainConfig`, `DataConfig` or `RunConfig` takes its
default from that field, so a default is written in exactly one place.

Adding an option: one `Option(...)` line here, the field it fills, and the
code that uses it.
"""

import dataclasses
from typing import Any

from datasets.config import DataConfig
from trainer.config import TrainConfig

# Groups, in the order `--help` lists them.
GROUPS = ("data", "model", "schedule", "distribution", "fault tolerance",
          "output")

_FROM_FIELD = object()


@dataclasses.dataclass(frozen=True)
class Option:
  """One option.

  Attributes:
    name: The keyword of `fit` and the flag's name (`--name`).
    kind: "str", "int", "float", "bool" or "list" (comma-separated on the
      command line; a list or tuple from Python).
    group: One of `GROUPS`.
    help: One or two sentences.
    field: "train.x", "data.x" or "run.x": the config field it fills (the
      default comes from there), or "" if it is turned into fields by
      `launch.options.run_config` (e.g. `loss` also fills `output_losses`).
    default: The default when `field` is empty.
  """

  name: str
  kind: str
  group: str
  help: str
  field: str = ""
  default: Any = _FROM_FIELD


def _field_default(path: str):
  scope, name = path.split(".")
  if scope == "run":
    from launch.options import run_config as config  # pylint: disable=import-outside-toplevel
    cls = config.RunConfig
  else:
    cls = {"train": TrainConfig, "data": DataConfig}[scope]
  field = {f.name: f for f in dataclasses.fields(cls)}[name]
  if field.default is not dataclasses.MISSING:
    return field.default
  return field.default_factory()  # pytype: disable=missing-parameter


def default(option: Option):
  """The option's default value (as a Python value, lists as tuples)."""
  if option.default is not _FROM_FIELD:
    return option.default
  return _field_default(option.field)


_O = Option
OPTIONS: tuple[Option, ...] = (
    # Data.
    _O("dataset", "str", "data", "A built-in dataset: digits, mnist,"
       " synthetic, digits_halves, digits_two_targets, sequences, tfrecord;"
       " or package.module:function returning your source(s).",
       "data.name"),
    _O("train_data", "str", "data", "Your training data: a .csv file (or"
       " glob), an .npz file, a directory of images in class subfolders, or"
       " TFRecord files with a schema.json; replaces --dataset.", default=None),
    _O("eval_data", "str", "data", "Your eval data, of the same kind as"
       " --train_data (else --validation_split, else no evaluation).",
       default=None),
    _O("label_column", "str", "data", "CSV: the column holding the label.",
       default=None),
    _O("task", "str", "data", "auto, classification or regression: what the"
       " labels are; auto decides from the data and asks when in doubt.",
       "run.task"),
    _O("image_size", "list", "data", "Image directories: height,width every"
       " image is resized to.", default=("256", "256")),
    _O("skip_unreadable", "bool", "data", "Image directories: skip files"
       " that cannot be decoded (empty, not an image, truncated) and count"
       " them in the log, instead of stopping with their names.",
       "run.skip_unreadable"),
    _O("data_dir", "str", "data", "Directory with on-disk data of a built-in"
       " dataset (mnist.npz for mnist; the files of python -m"
       " launch.write_tfrecords for tfrecord).", "data.data_dir"),
    _O("validation_split", "float", "data", "Hold out this fraction of the"
       " training data for evaluation: CSV and images seeded (--seed) and"
       " stratified by class; arrays the last examples, as Keras's fit.",
       "data.validation_split"),
    _O("cache", "bool", "data", "tfrecord: keep parsed records in memory"
       " after the first pass.", "data.cache"),
    _O("shuffle_buffer", "int", "data", "tfrecord: records shuffled"
       " together.", "data.shuffle_buffer"),
    _O("synthetic_examples", "int", "data", "Training examples of"
       " --dataset=synthetic.", "data.synthetic_examples"),
    _O("synthetic_eval_examples", "int", "data", "Eval examples of"
       " --dataset=synthetic.", "data.synthetic_eval_examples"),
    _O("synthetic_shape", "list", "data", "Feature shape of synthetic data.",
       default=("28", "28", "1")),
    _O("num_classes", "int", "data", "Classes of synthetic data.",
       "data.num_classes"),
    # Model.
    _O("model", "str", "model", "A built-in network (mlp, cnn, functional,"
       " subclassed, rnn, two_head) or package.module:function returning a"
       " keras.Model (compiled or not).", "train.model"),
    _O("loss", "str", "model", "Loss of an uncompiled model:"
       " sparse_categorical_crossentropy, categorical_crossentropy,"
       " binary_crossentropy, mse; per output: output:loss,output:loss"
       " (default: sparse_categorical_crossentropy; mse for regression).",
       "train.loss"),
    _O("loss_weights", "list", "model", "Multi-output models: output:weight"
       " pairs (Keras's loss_weights).", default=()),
    _O("from_logits", "bool", "model", "The network emits logits (else"
       " softmax/sigmoid probabilities).", "train.from_logits"),
    _O("metrics", "list", "model", "Metrics of an uncompiled model:"
       " accuracy, precision, recall, auc, mse, mae (default: accuracy;"
       " mae,mse for regression).", default=()),
    _O("optimizer", "str", "model", "Optimizer of an uncompiled model: adam,"
       " adamw, sgd, rmsprop.", "train.optimizer"),
    _O("learning_rate", "float", "model", "Learning rate (3e-3: short runs"
       " converge faster than with 1e-3).", "train.learning_rate"),
    _O("momentum", "float", "model", "Momentum of --optimizer=sgd.",
       "train.momentum"),
    _O("weight_decay", "float", "model", "Decoupled weight decay of"
       " --optimizer=adamw.", "train.weight_decay"),
    _O("l2", "float", "model", "L2 regularization of a built-in network's"
       " kernels.", "train.l2"),
    _O("dropout", "float", "model", "Dropout rate of the built-in cnn,"
       " functional and subclassed networks.", "train.dropout"),
    _O("sync_batchnorm", "bool", "model", "Built-in networks:"
       " BatchNormalization statistics over the global batch.",
       "train.sync_batchnorm"),
    _O("mixed_precision", "str", "model", "Keras dtype policy: float32,"
       " mixed_float16, mixed_bfloat16.", "train.mixed_precision"),
    _O("clip_norm", "float", "model", "Clip the all-reduced gradient's global"
       " norm; 0: off.", "train.clip_norm"),
    _O("accumulate_steps", "int", "model", "Split each replica's batch into"
       " this many micro-batches and sum their gradients before one"
       " update.", "train.accumulate_steps"),
    _O("seed", "int", "model", "Seed of the weights, the data order and"
       " augmentation.", "run.seed"),
    _O("deterministic", "bool", "model", "Deterministic ops: identical runs"
       " give bitwise-identical weights.", "run.deterministic"),
    _O("jit_compile", "bool", "model", "Compile the step with XLA.",
       "train.jit_compile"),
    # Schedule.
    _O("global_batch_size", "int", "schedule", "Examples per step over all"
       " replicas; must divide by the replica count.",
       "data.global_batch_size"),
    _O("train_steps", "int", "schedule", "Total training steps (or"
       " --epochs; 1000 when neither is set).", default=None),
    _O("epochs", "float", "schedule", "Passes over the training data (or"
       " --train_steps); evaluates after each unless --eval_every is set.",
       "run.epochs"),
    _O("steps_per_loop", "int", "schedule", "Steps per compiled call and per"
       " log line.", "train.steps_per_loop"),
    _O("eval_every", "int", "schedule", "Evaluate every N steps; 0: at the"
       " end (or after each epoch with --epochs).", "train.eval_every"),
    _O("lr_schedule", "str", "schedule", "constant, warmup_cosine or"
       " step_decay.", "train.lr_schedule"),
    _O("warmup_steps", "int", "schedule", "warmup_cosine: linear warmup"
       " steps.", "train.warmup_steps"),
    _O("decay_steps", "int", "schedule", "step_decay: steps between two"
       " decays.", "train.decay_steps"),
    _O("decay_rate", "float", "schedule", "step_decay: factor of every"
       " decay.", "train.decay_rate"),
    _O("monitor", "str", "schedule", "Eval metric watched by early stopping,"
       " the plateau rule and the best checkpoint.", "train.monitor"),
    _O("monitor_mode", "str", "schedule", "min, max, or auto (max for"
       " accuracy, auc, precision, recall).", "train.monitor_mode"),
    _O("early_stopping_patience", "int", "schedule", "Stop after N"
       " evaluations without improvement; 0: off.",
       "train.early_stopping_patience"),
    _O("restore_best_weights", "bool", "schedule", "On an early stop, go back"
       " to the best weights.", "train.restore_best_weights"),
    _O("plateau_patience", "int", "schedule", "Reduce a constant learning"
       " rate after N evaluations without improvement; 0: off.",
       "train.plateau_patience"),
    _O("plateau_factor", "float", "schedule", "Learning-rate factor on a"
       " plateau.", "train.plateau_factor"),
    _O("plateau_min_lr", "float", "schedule", "Lowest learning rate the"
       " plateau rule sets.", "train.plateau_min_lr"),
    # Distribution.
    _O("strategy", "str", "distribution", "auto, one_device, mirrored or"
       " multi_worker.", "run.strategy"),
    _O("cpu_devices", "int", "distribution", "Without GPUs, split the CPU"
       " into N logical devices and mirror over them (in every worker).",
       "run.cpu_devices"),
    _O("gpu_memory", "str", "distribution", "GPU memory per process: auto,"
       " growth, all, or a per-GPU limit in MB.", "run.gpu_memory"),
    _O("slurm_port_base", "int", "distribution", "Under srun, task i of a"
       " node listens on this port + i.", "run.slurm_port_base"),
    # Fault tolerance.
    _O("model_dir", "str", "fault tolerance", "Where checkpoints, summaries,"
       " metrics and the export go; a rerun with it resumes.",
       "train.model_dir"),
    _O("checkpoint_every", "int", "fault tolerance", "Save every N steps;"
       " 0: at the end only.", "train.checkpoint_every"),
    _O("keep_checkpoints", "int", "fault tolerance", "Newest checkpoints"
       " kept.", "train.keep_checkpoints"),
    _O("keep_best_checkpoint", "bool", "fault tolerance", "Also keep the"
       " checkpoint of the best evaluation in model_dir/best_checkpoint.",
       "train.keep_best_checkpoint"),
    _O("allow_config_change", "bool", "fault tolerance", "Resume even if"
       " model_dir's config.json differs in a setting that changes the"
       " result.", "run.allow_config_change"),
    _O("collective_timeout", "float", "fault tolerance", "Multi-worker: exit"
       " 1 when one compiled call takes longer (a stuck peer); 0: never.",
       "run.collective_timeout"),
    _O("startup_timeout", "float", "fault tolerance", "Multi-worker: exit 1"
       " when the workers have not all joined within this many seconds.",
       "run.startup_timeout"),
    _O("heartbeat_file", "str", "fault tolerance", "Write the step here after"
       " every loop (launch.local sets it).", "run.heartbeat_file"),
    _O("mode", "str", "fault tolerance", "train, or evaluate: score the"
       " latest checkpoint without training.", "run.mode"),
    _O("watch", "bool", "fault tolerance", "With --mode=evaluate: evaluate"
       " each new checkpoint until the final step.", "run.watch"),
    _O("eval_timeout", "float", "fault tolerance", "A watching evaluator"
       " gives up after this many seconds without a new checkpoint.",
       "run.eval_timeout"),
    # Output.
    _O("progress", "str", "output", "auto, bar, log or none: the chief's"
       " progress display.", "run.progress"),
    _O("verbose", "bool", "output", "Also show TensorFlow's own log lines"
       " (its C++ start-up lines and Python INFO lines), which are hidden"
       " otherwise; errors always show.", "run.verbose"),
    _O("profile_steps", "list", "output", "a,b: record a profiler trace of"
       " steps a..b for TensorBoard's Profile tab.", default=()),
)

BY_NAME = {option.name: option for option in OPTIONS}


def defaults() -> dict[str, Any]:
  """Every option's default value."""
  return {option.name: default(option) for option in OPTIONS}
