"""`fit`: train your Keras model on your data, on any number of devices.

    from launch import fit
    from datasets import from_arrays

    def model_fn():
      model = keras.Sequential([...])
      model.compile(optimizer="adam", loss="categorical_crossentropy",
                    metrics=["accuracy"])
      return model

    result = fit(model_fn, from_arrays(x_train, y_train),
                 eval_data=from_arrays(x_test, y_test),
                 model_dir="/tmp/run", global_batch_size=64, epochs=5)
    result.model.predict(x_test)

The strategy comes from the environment exactly as for `python -m launch`
(TF_CONFIG, an srun step, GPUs, `cpu_devices`), so one script runs on a
laptop, on every GPU of a node, or as one worker of a cluster job.
`python -m launch` is this same call with flags.
"""

import os

from launch.cli import console
from launch.distributed import cluster as cluster_lib
from launch.distributed import placement
from launch.errors import (FLAG_SPELLING, KEYWORD_SPELLING, ConfigError,
                           Preempted, RunFailed, StorageError)
from launch.options import resolve as config_lib
from launch.run import plan as plan_lib

# launch.local's script form passes each worker's heartbeat file here.
HEARTBEAT_ENV = "TFHARNESS_HEARTBEAT_FILE"


def plan(model_fn, train_data, *, eval_data=None, options: dict,
         spelling: str = KEYWORD_SPELLING) -> plan_lib.Plan:
  """Validates options, cluster, data and model; see `fit`.

  Args:
    spelling: How a `ConfigError` names options: `KEYWORD_SPELLING`
      (`fit`'s `name`) or `FLAG_SPELLING` (`--name`).
  """
  try:
    if callable(model_fn) and "model" not in options:
      # Recorded in config.json, so a rerun with another function is seen.
      options = dict(options, model=f"{getattr(model_fn, '__module__', '?')}:"
                     f"{getattr(model_fn, '__qualname__', '?')}")
    if not options.get("heartbeat_file") and os.environ.get(HEARTBEAT_ENV):
      options = dict(options, heartbeat_file=os.environ[HEARTBEAT_ENV])
    config = config_lib.to_config(options)
    console.configure_logging(config.verbose)
    placement.place_this_process()  # Before TensorFlow lists the GPUs.
    cluster = cluster_lib.from_environment(
        os.environ, slurm_port_base=config.slurm_port_base)
    return plan_lib.plan_run(config, cluster, train=train_data,
                             eval_data=eval_data, model_fn=model_fn,
                             given=frozenset(options) - (
                                 {"model"} if model_fn is not None else set()))
  except ConfigError as error:
    raise error.spelled(spelling) from None


def _is_peer_failure(error: Exception) -> bool:
  import tensorflow as tf  # Already imported by the run.
  return isinstance(error, (tf.errors.UnavailableError,
                            tf.errors.DeadlineExceededError,
                            tf.errors.CancelledError, tf.errors.AbortedError))


def _is_bad_data(error: Exception) -> bool:
  import tensorflow as tf  # Already imported by the run.
  return isinstance(error, tf.errors.InvalidArgumentError)


def _first_line(error: Exception) -> str:
  text = str(error).strip()
  return text.splitlines()[0][:300] if text else ""


def _storage_fault(the_plan: plan_lib.Plan, error: Exception):
  from trainer import storage  # pylint: disable=import-outside-toplevel
  config = the_plan.config
  return storage.describe(error, (config.train.model_dir,
                                  storage.file_dir(config.heartbeat_file)))


def _storage_error(fault) -> StorageError:
  return StorageError(str(fault), path=fault.path, cause=fault.cause)


def run(the_plan: plan_lib.Plan, *, callbacks=(), model_class=None,
        spelling: str = KEYWORD_SPELLING):
  """Executes a plan; maps failures onto the harness's exception types."""
  from launch.run import execute as run_lib  # pylint: disable=import-outside-toplevel
  import trainer  # pylint: disable=import-outside-toplevel
  from launch.run import model_dir_lock  # pylint: disable=import-outside-toplevel
  try:
    with model_dir_lock.for_run(the_plan):  # One training run per model_dir.
      return run_lib.execute(the_plan, model_class=model_class,
                             callbacks=callbacks, interruptible=True)
  except ValueError as error:  # Found while building model or pipelines.
    from datasets.errors import DataError  # pylint: disable=import-outside-toplevel
    if isinstance(error, DataError):
      error = plan_lib.data_error(error)
    if not isinstance(error, ConfigError):
      raise
    raise error.spelled(spelling) from None
  except trainer.StopRequested as stopped:
    raise Preempted(str(stopped), stopped.step) from None
  except trainer.StorageError as fault:
    raise _storage_error(fault) from None
  except (FloatingPointError, TimeoutError,
          trainer.CheckpointError) as error:
    raise RunFailed(str(error)) from None
  except Exception as error:  # pylint: disable=broad-except
    fault = _storage_fault(the_plan, error)  # config.json, the logs.
    if fault is not None:
      raise _storage_error(fault) from None
    if _is_bad_data(error):  # What the checks before training cannot see.
      from trainer import error_text  # pylint: disable=import-outside-toplevel
      raise RunFailed(
          f"training stopped on data the model cannot take"
          f" ({error_text.describe_op_error(error)}); check the labels"
          " and features against the model's outputs, inputs and"
          " loss.") from None
    if not _is_peer_failure(error):
      raise
    raise RunFailed(
        f"the run stopped because a peer worker failed or a collective"
        f" timed out ({type(error).__name__}: {_first_line(error)}).",
        peer_failure=True) from None


def fit(model_fn, train_data=None, *, eval_data=None, model_dir: str,
        global_batch_size: int, train_steps: int | None = None,
        epochs: float | None = None, callbacks=(), model_class=None,
        **options):
  """Trains a Keras model under the strategy the environment calls for.

  Args:
    model_fn: A function without arguments that builds and returns a
      `keras.Model` (Sequential, functional or subclassed); it is called
      inside the strategy's scope. If the model is compiled, its own
      optimizer, loss, metrics and `train_step`/`test_step` are used;
      otherwise the options' `optimizer`, `loss` and `metrics`. None:
      the built-in network of the `model` option.
    train_data: A `datasets` Source (`from_arrays`, `from_csv`,
      `from_image_directory`, `from_tfrecords`, `from_dataset_fn`); None:
      the built-in dataset of the `dataset` option (or `train_data` path
      option of the command line).
    eval_data: A Source evaluated every `eval_every` steps (each epoch with
      `epochs`) and at the end; or use the `validation_split` option.
    model_dir: Checkpoints, summaries, metrics.jsonl and the export; a
      rerun with the same directory resumes.
    global_batch_size: Examples per step over all replicas.
    train_steps: Run length in steps (or `epochs`; 1000 if neither).
    epochs: Run length in passes over `train_data`.
    callbacks: `keras.callbacks.Callback`s (see `trainer.keras_callbacks`
      for when they are called) and `trainer.callbacks.Callback`s.
    model_class: A `trainer.model.Model` subclass for the built-in network
      (a custom `train_step` in the harness's contract).
    **options: Any option of `python -m launch --help` by its name, e.g.
      `cpu_devices=2, steps_per_loop=50, eval_every=100, seed=0,
      deterministic=True, mixed_precision="mixed_float16"`.

  Returns:
    A `launch.run.execute.RunResult`: `.model` (the trained keras.Model), `.logs`
    (final eval: loss, metrics, examples), `.history` (train and eval
    rows), `.step`.

  Raises:
    ConfigError: (a ValueError) bad options, data or model, in one
      sentence; nothing was written.
    RunFailed: The run failed (non-finite loss, dead peer worker, ...).
    StorageError: (a RunFailed) model_dir filled up, turned read-only or
      was removed: one sentence naming the path, the cause and the fix;
      call again once it is fixed to resume from the last checkpoint.
    Preempted: Stopped by SIGTERM/SIGUSR1 after saving; call again to
      resume.
    KeyboardInterrupt: Ctrl-C, or raised by a callback: a checkpoint was
      saved at the loop boundary first (a second Ctrl-C does not wait);
      call again to resume.
  """
  console.configure_logging()
  options.update(model_dir=model_dir, global_batch_size=global_batch_size)
  if train_steps is not None:
    options["train_steps"] = train_steps
  if epochs is not None:
    options["epochs"] = epochs
  the_plan = plan(model_fn, train_data, eval_data=eval_data, options=options)
  return run(the_plan, callbacks=callbacks, model_class=model_class)
