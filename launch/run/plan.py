"""`plan_run`: a validated config, cluster, data and model, before TF runs.

The options are validated (`launch.options.resolve`), the data loaded and
checked (`launch.run.checks`), the task resolved; what needs the built model
is checked by `launch.run.checks` too, in `execute`, still before anything
is written. Each failure is one `ConfigError` sentence.
"""

import dataclasses
import inspect
import os

from launch.distributed import cluster as cluster_lib
from launch.options import definitions as options_lib
from launch.options import directories
from launch.options import resolve as config_lib
from launch.cli import console
from launch.distributed import gpu_usage
from launch.run import checks
from launch.run import resume
from launch.distributed import strategy as strategy_lib
from launch.run import tasks
from launch.errors import ConfigError, flag


@dataclasses.dataclass(frozen=True)
class Plan:
  """What a validated run will do, decided before TensorFlow starts.

  Attributes:
    config: The validated config, run length resolved.
    cluster: This task's cluster.
    train_source: A `datasets` Source of the training data.
    eval_source: A Source of the eval data, or None (no evaluation).
    model_fn: A zero-argument function returning a keras.Model, or None
      to build `config.train.model` (a built-in or an (input_shape, spec)
      builder).
    strategy_kind: Resolved strategy kind.
    num_replicas: Replicas in sync.
    gpu_memory: How this process takes GPU memory.
    num_gpus: GPUs this process sees.
    given: Names of the options the caller set (not defaults).
  """

  config: config_lib.RunConfig
  cluster: cluster_lib.ClusterInfo
  train_source: object
  eval_source: object
  model_fn: object
  strategy_kind: str
  num_replicas: int
  gpu_memory: gpu_usage.MemoryPolicy
  num_gpus: int = 0
  given: frozenset = frozenset()


def _import(kind: str, name: str):
  """`package.module:function` of --model or --dataset."""
  from trainer import models  # pylint: disable=import-outside-toplevel
  try:
    return models.import_function(name, kind=kind,
                                  label=f"{flag(kind)}={name}")
  except ValueError as error:
    raise ConfigError(str(error)) from None


def takes_no_arguments(function) -> bool:
  try:
    parameters = inspect.signature(function).parameters.values()
  except (TypeError, ValueError):
    return False
  return not [p for p in parameters if p.default is p.empty
              and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def resolve_model_fn(config: config_lib.RunConfig, model_fn):
  """A zero-argument model function, or None for `--model`'s builder."""
  if model_fn is not None:
    if (not isinstance(model_fn, type) and hasattr(model_fn, "layers")
        and hasattr(model_fn, "compile")):
      raise ConfigError("model_fn is a model, not the function that builds"
                        " it: pass build_model, not build_model(); its"
                        " variables must be created inside it, in the"
                        " strategy's scope.")
    if isinstance(model_fn, str):
      raise ConfigError("pass a built-in network as model=..., and a"
                        " function as model_fn.")
    if not callable(model_fn) or not takes_no_arguments(model_fn):
      raise ConfigError("model_fn must be a function without arguments that"
                        " returns a keras.Model.")
    return model_fn
  name = config.train.model
  if ":" in name:
    function = _import("model", name)
    if takes_no_arguments(function):
      return function
  return None  # A built-in, or an (input_shape, spec) builder.


def _is_source(value) -> bool:
  return hasattr(value, "train_dataset_fn") and hasattr(
      value, "eval_dataset_fn")


def _user_dataset(name: str):
  """--dataset=module:function: a Source or a (train, eval) pair."""
  result = _import("dataset", name)()
  if _is_source(result):
    return result, None
  if (isinstance(result, tuple) and len(result) == 2 and _is_source(result[0])
      and (result[1] is None or _is_source(result[1]))):
    return result
  raise ConfigError(f"{flag('dataset')}={name} returned"
                    f" {type(result).__name__}, not"
                    " a datasets Source or a (train, eval) pair of them.")


def load_sources(config: config_lib.RunConfig, train=None, eval_data=None):
  """(train, eval or None) Sources: given, from paths, or a built-in.

  Raises:
    ConfigError: If the data cannot be loaded or does not fit together.
  """
  from datasets.errors import DataError  # pylint: disable=import-outside-toplevel
  split = config.data.validation_split
  try:
    if train is None and config.train_data:
      import datasets  # pylint: disable=import-outside-toplevel
      path_options = dict(label_column=config.label_column,
                          image_size=config.image_size,
                          skip_unreadable=config.skip_unreadable)
      train = datasets.from_path(config.train_data, task=tasks.data_task(
          config), **path_options)
      if config.eval_data:  # Read as the training data: same classes.
        eval_data = datasets.from_path(
            config.eval_data, task=train.task or "auto",
            class_names=train.class_names, **path_options)
    elif train is None and ":" in config.data.name:
      train, eval_data = _user_dataset(config.data.name)
    elif train is None:
      from datasets import catalogue  # pylint: disable=import-outside-toplevel
      # Its test split, replaced by the validation split below.
      train, eval_data = catalogue.load(dataclasses.replace(
          config.data, validation_split=0.0))
      if split:
        eval_data = None
    if not _is_source(train) or (eval_data is not None
                                 and not _is_source(eval_data)):
      raise ConfigError("train_data and eval_data must be datasets Sources"
                        " (datasets.from_arrays, from_csv, ...).")
    if split:  # The one place a validation split is made.
      if eval_data is not None:
        raise ConfigError(f"give eval data or {flag('validation_split')}, not"
                          " both.")
      train, eval_data = split_source(train, split, config.data.seed)
  except DataError as error:
    raise data_error(error) from None
  return train, eval_data


def split_source(source, fraction: float, seed: int):
  """(train, eval) parts of `source`; seeded if its `split` takes a seed."""
  try:
    takes_seed = "seed" in inspect.signature(source.split).parameters
  except (TypeError, ValueError):
    takes_seed = False
  return (source.split(fraction, seed=seed) if takes_seed
          else source.split(fraction))


def data_error(error) -> ConfigError:
  """A `datasets.errors.DataError` for the caller: the `datasets` arguments
  that are options (`data_dir`, `label_column`, `task`...) become options,
  spelled by the edge; other arguments keep their Python names."""
  options = options_lib.by_name()
  return ConfigError(error.spelled(
      lambda name: flag(name) if name in options else name))


def plan_run(config: config_lib.RunConfig,
             cluster: cluster_lib.ClusterInfo, *, train=None, eval_data=None,
             model_fn=None, given=frozenset()) -> Plan:
  """Validates everything and loads the data, touching nothing on disk.

  Args:
    config: The run's settings.
    cluster: This task's place in the cluster.
    train: A Source of training data, or None to load what `config` names.
    eval_data: A Source of eval data (with `train` only).
    model_fn: A zero-argument function returning a keras.Model, or None
      for `config.train.model`.
    given: Names of the options the caller set.

  Raises:
    ConfigError: If the flags, cluster, data or model are unusable.
  """
  config_lib.validate(config)
  if cluster.is_evaluator:
    if config.strategy == "multi_worker":
      raise ConfigError("an evaluator task runs apart from the training"
                        f" cluster; use {flag('strategy')}=auto, mirrored or"
                        " one_device for it.")
    # A sidecar: evaluate each checkpoint the training tasks write.
    config = dataclasses.replace(config, mode="evaluate", watch=True)
  elif "evaluator" in cluster.cluster and (
      config.train.early_stopping_patience or config.train.plateau_patience
      or config.train.keep_best_checkpoint):
    raise ConfigError("with an evaluator task the training tasks do not"
                      " evaluate, so early stopping, plateau and best"
                      " checkpoints cannot run there.")
  elif config.mode == "evaluate" and cluster.is_multi_worker:
    raise ConfigError(f"{flag('mode')}=evaluate runs in one process; unset"
                      " TF_CONFIG or give it an evaluator task.")
  if cluster.is_multi_worker and not cluster.is_chief:
    directories.check_scratch()  # Where this worker's saves go.
  # Validated: now load TensorFlow (seconds), before a user's model module
  # or data may, so that its start-up lines are filtered.
  console.import_tensorflow(config.verbose)
  model_fn = resolve_model_fn(config, model_fn)
  _check_model_options(model_fn, given)
  train, eval_data = load_sources(config, train, eval_data)
  config = tasks.resolve(config, train, given)
  # After the task is resolved: config.json records the resolved one.
  if config.mode == "train":
    resume.check_resume_compatible(config)
  checks.check_data(config, train, eval_data)
  config = config_lib.resolve_train_steps(config, train.num_examples or 0)
  config_lib.check_profile_steps(config)
  gpu_memory = gpu_usage.choose_memory_policy(
      config.gpu_memory, processes_on_node=gpu_usage.processes_on_host(cluster),
      environ=os.environ)
  import tensorflow as tf  # After validation: importing costs seconds.
  if model_fn is None:
    from trainer import models  # pylint: disable=import-outside-toplevel
    try:
      models.resolve_builder(config.train.model,
                             label=f"{flag('model')}={config.train.model}")
    except ValueError as error:
      raise ConfigError(str(error)) from None
  num_gpus = len(tf.config.list_physical_devices("GPU"))
  # An evaluator's strategy is local: it never joins the collectives.
  strategy_cluster = (cluster_lib.ClusterInfo() if cluster.is_evaluator
                      else cluster)
  kind = strategy_lib.resolve_strategy_kind(
      config.strategy, cluster=strategy_cluster, num_gpus=num_gpus,
      cpu_devices=config.cpu_devices)
  replicas = strategy_lib.count_replicas(kind, cluster=strategy_cluster,
                                         num_gpus=num_gpus,
                                         cpu_devices=config.cpu_devices)
  checks.check_batch(config, train, replicas)
  if model_fn is None:
    checks.check_outputs(config.train, train)
  if config.train.jit_compile and replicas > 1 and not num_gpus:
    # Measured: XLA fails with "Trying to access resource ... located in
    # device CPU:1 from device CPU:0" on mirrored logical CPUs.
    raise ConfigError(f"{flag('jit_compile')} needs GPUs or a single replica;"
                      " XLA cannot place variables of logical CPU devices.")
  from trainer import layout  # pylint: disable=import-outside-toplevel
  checkpoints = layout.ModelDir(config.train.model_dir).checkpoints
  if (config.mode == "evaluate" and not config.watch
      and tf.train.latest_checkpoint(checkpoints) is None):
    raise ConfigError(f"{flag('mode')}=evaluate found no checkpoint in"
                      f" {checkpoints}.")
  return Plan(config, cluster, train, eval_data, model_fn, kind, replicas,
              gpu_memory, num_gpus, frozenset(given))


def _refuse(given, applies_to: str, says: str) -> None:
  refused = [option.name for option in options_lib.OPTIONS
             if option.applies_to == applies_to and option.name in given]
  if refused:
    raise ConfigError(f"{flag(refused[0])} {says}")


def _check_model_options(model_fn, given) -> None:
  """Options that shape the built-in networks only are refused."""
  if model_fn is not None:
    _refuse(given, options_lib.BUILT_IN_ONLY, "shapes the built-in networks"
            " only; build it into your model instead.")


def refuse_for_compiled(given) -> None:
  """A compiled model brings its optimizer, loss and metrics."""
  _refuse(given, options_lib.UNCOMPILED_ONLY, "does not apply to a compiled"
          " model: compile() chose its optimizer, loss and metrics (set it"
          " there, e.g. keras.optimizers.Adam(global_clipnorm=...) for"
          " clipping).")
