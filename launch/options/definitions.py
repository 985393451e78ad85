"""Every option of a run, defined once, with all of its facts.

An `Option` carries its name, kind, group, help, default (or the config
field it fills, whose default is then the one default), its allowed values
(`choices`, owned by the package that implements them), its `bounds`,
whether it changes the result (the resume check), to which models it
applies and whether TensorBoard's HParams tab shows it. Everything else
follows from `OPTIONS`: the command-line flags (`launch.cli.flags`), the
keyword arguments of `launch.fit`, `config.json`, the per-option checks of
`launch.options.resolve.validate`, the resume check
(`launch.run.resume`), the refusals for a user's model
(`launch.run.plan`) and the HParams (`launch.run.writers`).

Adding an option: one `Option(...)` entry here (what an `Option` is:
`launch.options.option`), the config field it fills,
and the code that uses it.
"""

from typing import Any

from datasets.config import DATASET_NAMES
from datasets.labels import TASKS
from launch.distributed.strategy import STRATEGY_KINDS
from launch.options.config import MODES, PROGRESS_KINDS, RunConfig
# What an option is, re-exported: users of the table read it from here.
from launch.options.option import (  # noqa: F401
    BUILT_IN_ONLY, EVERY_MODEL, FRACTION, GROUPS, KINDS, POSITIVE,
    UNCOMPILED_ONLY, ZERO_OR_MORE, Option, Range, config_path, default,
    describe_choices, has_own_default, value_in)
from trainer.config import (LOSS_NAMES, LR_SCHEDULES, METRIC_NAMES,
                            MODEL_NAMES, MONITOR_MODES, OPTIMIZER_NAMES,
                            PRECISION_POLICIES)

_O = Option
OPTIONS: tuple[Option, ...] = (
    # Data.
    _O("dataset", "str", "data", "A built-in dataset: {choices}; or"
       " package.module:function returning your source(s).", "data.name",
       choices=DATASET_NAMES, takes_colon=True, changes_result=True,
       hparam="dataset"),
    _O("train_data", "str", "data", "Your training data: a .csv file (or"
       " glob), an .npz file, a directory of images in class subfolders, or"
       " TFRecord files with a schema.json; replaces --dataset.",
       "run.train_data", changes_result=True),
    _O("eval_data", "str", "data", "Your eval data, of the same kind as"
       " --train_data (else --validation_split, else no evaluation).",
       "run.eval_data", changes_result=True),
    _O("label_column", "str", "data", "CSV: the column holding the label.",
       "run.label_column", changes_result=True),
    _O("task", "str", "data", "{choices}: what the labels are; auto decides"
       " from the data and asks when in doubt.", "run.task", choices=TASKS),
    _O("image_size", "ints", "data", "Image directories: height,width every"
       " image is resized to.", "run.image_size", length=2,
       changes_result=True),
    _O("skip_unreadable", "bool", "data", "Image directories: skip files"
       " that cannot be decoded (empty, not an image, truncated) and count"
       " them in the log, instead of stopping with their names.",
       "run.skip_unreadable"),
    _O("data_dir", "str", "data", "Directory with on-disk data of a built-in"
       " dataset (mnist.npz for mnist; the files of python -m"
       " launch.write_tfrecords for tfrecord).", "data.data_dir",
       changes_result=True),
    _O("validation_split", "float", "data", "Hold out this fraction of the"
       " training data for evaluation: CSV and images seeded (--seed) and"
       " stratified by class; arrays the last examples, as Keras's fit.",
       "data.validation_split", bounds=FRACTION, changes_result=True),
    _O("cache", "bool", "data", "tfrecord: keep parsed records in memory"
       " after the first pass.", "data.cache", changes_result=True),
    _O("shuffle_buffer", "int", "data", "tfrecord: records shuffled"
       " together.", "data.shuffle_buffer", bounds=POSITIVE,
       changes_result=True),
    _O("synthetic_examples", "int", "data", "Training examples of"
       " --dataset=synthetic.", "data.synthetic_examples", bounds=POSITIVE,
       changes_result=True),
    _O("synthetic_eval_examples", "int", "data", "Eval examples of"
       " --dataset=synthetic.", "data.synthetic_eval_examples",
       bounds=POSITIVE),
    _O("synthetic_shape", "ints", "data", "Feature shape of synthetic data.",
       "data.synthetic_shape", changes_result=True),
    _O("num_classes", "int", "data", "Classes of synthetic data.",
       "data.num_classes", bounds=POSITIVE, changes_result=True),
    # Model.
    _O("model", "str", "model", "A built-in network ({choices}) or"
       " package.module:function returning a keras.Model (compiled or"
       " not).", "train.model", choices=MODEL_NAMES, takes_colon=True,
       changes_result=True, hparam="model"),
    _O("loss", "str", "model", "Loss of an uncompiled model: {choices}; per"
       " output: output:loss,output:loss (default:"
       " sparse_categorical_crossentropy; mse for regression).",
       "train.loss", choices=LOSS_NAMES, takes_colon=True,
       changes_result=True, applies_to=UNCOMPILED_ONLY,
       hparam="loss_function"),  # "loss" is the loss metric's column.
    _O("loss_weights", "list", "model", "Multi-output models: output:weight"
       " pairs (Keras's loss_weights).", "train.loss_weights",
       changes_result=True, applies_to=UNCOMPILED_ONLY),
    _O("from_logits", "bool", "model", "The network emits logits (else"
       " softmax/sigmoid probabilities).", "train.from_logits",
       changes_result=True, applies_to=UNCOMPILED_ONLY),
    _O("metrics", "list", "model", "Metrics of an uncompiled model:"
       " {choices} (default: accuracy; mae,mse for regression).",
       "train.metrics", default=(), choices=METRIC_NAMES,
       applies_to=UNCOMPILED_ONLY),
    _O("optimizer", "str", "model", "Optimizer of an uncompiled model:"
       " {choices}.", "train.optimizer", choices=OPTIMIZER_NAMES,
       changes_result=True, applies_to=UNCOMPILED_ONLY, hparam="optimizer"),
    _O("learning_rate", "float", "model", "Learning rate (3e-3: short runs"
       " converge faster than with 1e-3).", "train.learning_rate",
       bounds=POSITIVE, changes_result=True, applies_to=UNCOMPILED_ONLY,
       hparam="learning_rate"),
    _O("momentum", "float", "model", "Momentum of --optimizer=sgd.",
       "train.momentum", bounds=ZERO_OR_MORE, changes_result=True,
       applies_to=UNCOMPILED_ONLY),
    _O("weight_decay", "float", "model", "Decoupled weight decay of"
       " --optimizer=adamw.", "train.weight_decay", bounds=ZERO_OR_MORE,
       changes_result=True, applies_to=UNCOMPILED_ONLY),
    _O("l2", "float", "model", "L2 regularization of a built-in network's"
       " kernels.", "train.l2", bounds=ZERO_OR_MORE, changes_result=True,
       applies_to=BUILT_IN_ONLY, hparam="l2"),
    _O("dropout", "float", "model", "Dropout rate of the built-in cnn,"
       " functional and subclassed networks.", "train.dropout",
       bounds=FRACTION, changes_result=True, applies_to=BUILT_IN_ONLY,
       hparam="dropout"),
    _O("sync_batchnorm", "bool", "model", "Built-in networks:"
       " BatchNormalization statistics over the global batch.",
       "train.sync_batchnorm", changes_result=True,
       applies_to=BUILT_IN_ONLY),
    _O("mixed_precision", "str", "model", "Keras dtype policy: {choices}.",
       "train.mixed_precision", choices=PRECISION_POLICIES,
       changes_result=True, hparam="mixed_precision"),
    _O("clip_norm", "float", "model", "Clip the all-reduced gradient's global"
       " norm; 0: off.", "train.clip_norm", bounds=ZERO_OR_MORE,
       changes_result=True, applies_to=UNCOMPILED_ONLY, hparam="clip_norm"),
    _O("accumulate_steps", "int", "model", "Split each replica's batch into"
       " this many micro-batches and sum their gradients before one"
       " update.", "train.accumulate_steps", bounds=POSITIVE,
       changes_result=True, applies_to=UNCOMPILED_ONLY,
       hparam="accumulate_steps"),
    _O("seed", "int", "model", "Seed of the weights, the data order and"
       " augmentation.", "data.seed", changes_result=True, hparam="seed"),
    _O("deterministic", "bool", "model", "Deterministic ops: identical runs"
       " give bitwise-identical weights.", "run.deterministic"),
    _O("jit_compile", "bool", "model", "Compile the step with XLA.",
       "train.jit_compile"),
    # Schedule.
    _O("global_batch_size", "int", "schedule", "Examples per step over all"
       " replicas; must divide by the replica count.",
       "data.global_batch_size", bounds=POSITIVE, changes_result=True,
       hparam="global_batch_size"),
    _O("train_steps", "int", "schedule", "Total training steps (or"
       " --epochs; 1000 when neither is set).", "train.train_steps",
       default=None, bounds=POSITIVE, hparam="train_steps"),
    _O("epochs", "float", "schedule", "Passes over the training data (or"
       " --train_steps); evaluates after each unless --eval_every is set.",
       "run.epochs", bounds=POSITIVE),
    _O("steps_per_loop", "int", "schedule", "Steps per compiled call and per"
       " log line.", "train.steps_per_loop", bounds=POSITIVE,
       hparam="steps_per_loop"),
    _O("eval_every", "int", "schedule", "Evaluate every N steps; 0: at the"
       " end (or after each epoch with --epochs).", "train.eval_every",
       bounds=ZERO_OR_MORE),
    _O("lr_schedule", "str", "schedule", "{choices}.", "train.lr_schedule",
       choices=LR_SCHEDULES, changes_result=True,
       applies_to=UNCOMPILED_ONLY, hparam="lr_schedule"),
    _O("warmup_steps", "int", "schedule", "warmup_cosine: linear warmup"
       " steps.", "train.warmup_steps", bounds=ZERO_OR_MORE,
       changes_result=True, applies_to=UNCOMPILED_ONLY),
    _O("decay_steps", "int", "schedule", "step_decay: steps between two"
       " decays.", "train.decay_steps", bounds=POSITIVE, changes_result=True,
       applies_to=UNCOMPILED_ONLY),
    _O("decay_rate", "float", "schedule", "step_decay: factor of every"
       " decay.", "train.decay_rate", bounds=Range(0, 1, low_open=True),
       changes_result=True, applies_to=UNCOMPILED_ONLY),
    _O("monitor", "str", "schedule", "Eval metric watched by early stopping,"
       " the plateau rule and the best checkpoint.", "train.monitor",
       changes_result=True),
    _O("monitor_mode", "str", "schedule", "{choices} (auto: max for"
       " accuracy, auc, precision, recall; else min).", "train.monitor_mode",
       choices=MONITOR_MODES, changes_result=True),
    _O("early_stopping_patience", "int", "schedule", "Stop after N"
       " evaluations without improvement; 0: off.",
       "train.early_stopping_patience", bounds=ZERO_OR_MORE,
       changes_result=True),
    _O("restore_best_weights", "bool", "schedule", "On an early stop, go back"
       " to the best weights.", "train.restore_best_weights",
       changes_result=True),
    _O("plateau_patience", "int", "schedule", "Reduce a constant learning"
       " rate after N evaluations without improvement; 0: off.",
       "train.plateau_patience", bounds=ZERO_OR_MORE, changes_result=True),
    _O("plateau_factor", "float", "schedule", "Learning-rate factor on a"
       " plateau.", "train.plateau_factor",
       bounds=Range(0, 1, low_open=True, high_open=True),
       changes_result=True),
    _O("plateau_min_lr", "float", "schedule", "Lowest learning rate the"
       " plateau rule sets.", "train.plateau_min_lr", bounds=ZERO_OR_MORE,
       changes_result=True),
    # Distribution.
    _O("strategy", "str", "distribution", "{choices}.", "run.strategy",
       choices=STRATEGY_KINDS, hparam="strategy"),
    _O("cpu_devices", "int", "distribution", "Without GPUs, split the CPU"
       " into N logical devices and mirror over them (in every worker).",
       "run.cpu_devices", bounds=POSITIVE),
    _O("gpu_memory", "str", "distribution", "GPU memory per process: auto,"
       " growth, all, or a per-GPU limit in MB.", "run.gpu_memory"),
    _O("slurm_port_base", "int", "distribution", "Under srun, task i of a"
       " node listens on this port + i.", "run.slurm_port_base"),
    # Fault tolerance.
    _O("model_dir", "str", "fault tolerance", "Where checkpoints, summaries,"
       " metrics and the export go; a rerun with it resumes.",
       "train.model_dir"),
    _O("checkpoint_every", "int", "fault tolerance", "Save every N steps;"
       " 0: at the end only.", "train.checkpoint_every",
       bounds=ZERO_OR_MORE),
    _O("keep_checkpoints", "int", "fault tolerance", "Newest checkpoints"
       " kept.", "train.keep_checkpoints", bounds=POSITIVE),
    _O("keep_best_checkpoint", "bool", "fault tolerance", "Also keep the"
       " checkpoint of the best evaluation in model_dir/best_checkpoint.",
       "train.keep_best_checkpoint"),
    _O("allow_config_change", "bool", "fault tolerance", "Resume even if"
       " model_dir's config.json differs in a setting that changes the"
       " result; the changed settings take effect from the resumed step.",
       "run.allow_config_change"),
    _O("init_checkpoint", "str", "fault tolerance", "Start a new model_dir"
       " from another run's weights: a checkpoint prefix or that run's"
       " model_dir (its newest checkpoint); ignored once model_dir has a"
       " checkpoint of its own.", "run.init_checkpoint"),
    _O("init_optimizer", "bool", "fault tolerance", "With init_checkpoint,"
       " also take its optimizer state (slots, update count); the learning"
       " rate stays this run's.", "run.init_optimizer"),
    _O("nan_retries", "int", "fault tolerance", "On a non-finite loss,"
       " roll every worker back to the newest checkpoint with finite"
       " weights and halve the learning rate, up to N times; 0: stop.",
       "train.nan_retries", bounds=ZERO_OR_MORE),
    _O("collective_timeout", "float", "fault tolerance", "Multi-worker: exit"
       " 1 when one compiled call takes longer (a stuck peer); 0: never.",
       "run.collective_timeout", bounds=ZERO_OR_MORE),
    _O("startup_timeout", "float", "fault tolerance", "Multi-worker: exit 1"
       " when the workers have not all joined within this many seconds.",
       "run.startup_timeout", bounds=ZERO_OR_MORE),
    _O("heartbeat_file", "str", "fault tolerance", "Write the step here after"
       " every loop (launch.local sets it).", "run.heartbeat_file"),
    _O("mode", "str", "fault tolerance", "{choices}: evaluate scores the"
       " latest checkpoint without training.", "run.mode", choices=MODES),
    _O("watch", "bool", "fault tolerance", "With --mode=evaluate: evaluate"
       " each new checkpoint until the final step.", "run.watch"),
    _O("eval_timeout", "float", "fault tolerance", "A watching evaluator"
       " gives up after this many seconds without a new checkpoint.",
       "run.eval_timeout"),
    # Output.
    _O("progress", "str", "output", "{choices}: the chief's progress"
       " display.", "run.progress", choices=PROGRESS_KINDS),
    _O("verbose", "bool", "output", "Also show TensorFlow's own log lines"
       " (its C++ start-up lines and Python INFO lines), which are hidden"
       " otherwise; errors always show.", "run.verbose"),
    _O("profile_steps", "list", "output", "a,b: record a profiler trace of"
       " steps a..b for TensorBoard's Profile tab.", "train.profile_steps",
       default=()),
)



def by_name() -> dict[str, Option]:
  """{name: Option} of `OPTIONS` (read at each call: a test may add one)."""
  return {option.name: option for option in OPTIONS}


def defaults() -> dict[str, Any]:
  """Every option's default value."""
  return {option.name: default(option) for option in OPTIONS}


def hparams(config: RunConfig, *, is_built_in: bool,
            is_compiled: bool) -> dict[str, Any]:
  """{HParams name: value} of the options the model really has.

  An option for the built-in networks only is left out for a user's
  model, and one for uncompiled models only for a compiled model (its
  own choices come from `trainer.tensorboard.compiled_model_hparams`).

  Args:
    config: The run's resolved config.
    is_built_in: The network is a built-in one (or a builder's).
    is_compiled: The model was compiled by the user.
  """
  left_out = set()
  if not is_built_in:
    left_out.add(BUILT_IN_ONLY)
  if is_compiled:
    left_out.add(UNCOMPILED_ONLY)
  return {option.hparam: value_in(config, option) for option in OPTIONS
          if option.hparam and option.applies_to not in left_out}
