"""What TensorBoard shows of a run: scalars, the HParams session, the model.

    summaries/          the HParams session: a run of its own, with both
                        splits below it, so the HParams tab can score the
                        trial on the eval metrics as well as the train ones
    summaries/train/    train scalars, the model summary (Text tab), the
                        graph of the first train loop (Graphs tab), and the
                        profiler's traces (plugins/profile/, Profile tab)
    summaries/eval/     eval scalars

TensorBoard's `--logdir` may be the model_dir or any directory above it:
the HParams plugin finds metrics as `<session run>/<group>`, a path relative
to the session, so several model_dirs under one parent each get a row.
"""

from collections.abc import Mapping, Sequence
import os

import keras
import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams_api
from tensorboard.plugins.hparams import plugin_data_pb2

from trainer import model_summary as model_summary_lib
from trainer import writers

# Logged per train loop but not numbers to rank a trial by (HParams tab).
NOT_METRICS = ("learning_rate", "steps_per_sec", "examples_per_sec",
               "examples")
# In metrics.jsonl, not in TensorBoard: the eval example count is a flat
# line that pushed the loss chart off the first screen.
NOT_SCALARS = ("examples",)
# The dashboards sort charts by the tag's prefix (before "/") and open the
# first groups: the model's loss and metrics keep their plain names and come
# first; the loop's own numbers go into groups that sort after them.
SCALAR_TAGS = {"learning_rate": "schedule/learning_rate",
               "steps_per_sec": "speed/steps_per_sec",
               "examples_per_sec": "speed/examples_per_sec"}
# Display names of the metric groups in the HParams tab.
_GROUP_NAMES = {"train": "train", "eval": "val", "evaluate": "val"}
# The HParams table's default columns (it shows five).
HEADLINE_HPARAMS = ("model", "dataset", "optimizer", "learning_rate",
                    "global_batch_size")
MODEL_SUMMARY_TAG = "model_summary"
GRAPH_TAG = "train_loop"


def scalar_tag(name: str) -> str:
  """The TensorBoard tag of a logged number (metrics.jsonl uses `name`)."""
  return SCALAR_TAGS.get(name, name)


class TensorBoardWriter(writers.MetricWriter):
  """Event files for TensorBoard under `logdir` (the model_dir's summaries/).

  One directory per split for the scalars (train/, eval/). The HParams
  experiment and session go into `logdir` itself at the first write, when
  the metric names are known.
  """

  def __init__(self, logdir: str, *,
               hparams: Mapping[str, object] | None = None,
               trial_id: str = "", metric_groups: Sequence[str] = (
                   "train", "eval"),
               model_summary: str = "", trace_graph: bool = False):
    """Initializes the writer.

    Args:
      logdir: The run's summary directory.
      hparams: The run's settings for the HParams tab (values bool, int,
        float or str; others as their str); None writes no session (an
        evaluation-only run).
      trial_id: The session's name in the HParams tab (the model_dir), so
        two runs with equal settings are two rows.
      metric_groups: The splits whose metrics the HParams tab shows.
      model_summary: Text for the Text tab of the train split (written now,
        at step 0, as a monospace block).
      trace_graph: Record the graph of the functions that run until the
        first train write (the first train loop) for the Graphs tab.
    """
    self._logdir = logdir
    self._writers: dict[str, tf.summary.SummaryWriter] = {}
    self._hparams = hparams
    self._trial_id = trial_id
    self._metric_groups = tuple(metric_groups)
    self._is_first_write = True
    self._is_tracing = False
    if model_summary:
      self.write_text("train", MODEL_SUMMARY_TAG,
                      model_summary_lib.as_markdown(model_summary), step=0)
    if trace_graph:
      # Graph collection is per process; it stops at the first write.
      tf.summary.trace_on(graph=True, profiler=False)
      self._is_tracing = True

  def _writer(self, split: str) -> tf.summary.SummaryWriter:
    """The split's event-file writer ("" is `logdir` itself)."""
    if split not in self._writers:
      self._writers[split] = tf.summary.create_file_writer(
          os.path.join(self._logdir, split) if split else self._logdir)
    return self._writers[split]

  def write(self, split, step, scalars):
    if split == writers.RECOVERY_SPLIT:
      self._write_rollback(step, scalars)
      return
    if self._is_first_write:
      self._is_first_write = False
      self._first_write(split, step, scalars)
    with self._writer(split).as_default(step=step):
      for name, value in scalars.items():
        if name not in NOT_SCALARS:
          tf.summary.scalar(scalar_tag(name), value)
    self._writers[split].flush()

  def _write_rollback(self, step: int, scalars) -> None:
    """A rollback (`nan_retries`), in the train run: its retry number and
    the step it went back to as scalars, and a line in the Text tab."""
    with self._writer("train").as_default(step=step):
      for name in ("retry", "restored_step"):
        tf.summary.scalar(f"recovery/{name}", scalars[name])
      tf.summary.text(
          "recovery", f"non-finite loss ({scalars['loss']}) in the steps up"
          f" to {step}; rolled back to step {scalars['restored_step']},"
          f" learning rate {scalars['learning_rate_before']:.4g} ->"
          f" {scalars['learning_rate']:.4g} (retry {scalars['retry']} of"
          f" {scalars['max_retries']})")
    self._writers["train"].flush()

  def _first_write(self, split: str, step: int, scalars) -> None:
    if self._is_tracing:
      self._is_tracing = False
      if split == "train":
        with self._writer("train").as_default(step=step):
          tf.summary.trace_export(GRAPH_TAG, step=step)
      else:  # Already trained: an evaluation only, no train graph.
        tf.summary.trace_off()
    if self._hparams:
      self._write_session([name for name in scalars
                           if name not in NOT_METRICS])

  def _write_session(self, metric_names: Sequence[str]) -> None:
    """The HParams experiment (names, metrics) and this run's session."""
    values = hparam_values(self._hparams)
    metrics = [
        hparams_api.Metric(name, group=group,
                           display_name=f"{_GROUP_NAMES.get(group, group)}"
                           f" {name}")
        for group in sorted(self._metric_groups,
                            key=lambda group: group == "train")  # Val first.
        for name in metric_names]
    experiment = hparams_api.hparams_config_pb(
        hparams=[hparams_api.HParam(name) for name in values],
        metrics=metrics)
    _mark_headline_hparams(experiment)
    with self._writer("").as_default(step=0):
      tf.summary.experimental.write_raw_pb(experiment.SerializeToString(),
                                           step=0)
      hparams_api.hparams(values, trial_id=self._trial_id or None)
    self._writers[""].flush()

  def write_text(self, split: str, tag: str, markdown: str,
                 step: int) -> None:
    """A markdown text summary (TensorBoard's Text tab)."""
    with self._writer(split).as_default(step=step):
      tf.summary.text(tag, markdown)
    self._writers[split].flush()

  def close(self):
    if self._is_tracing:
      self._is_tracing = False
      tf.summary.trace_off()
    for writer in self._writers.values():
      writer.close()


def _mark_headline_hparams(experiment) -> None:
  """Makes HEADLINE_HPARAMS the HParams table's default columns.

  The dashboard shows the first five hparams, sorted by `differs` and then
  by name (accumulate_steps, clip_norm, ... otherwise). One run cannot know
  what differs across a sweep, so the headline ones are marked instead.
  """
  content = experiment.value[0].metadata.plugin_data
  data = plugin_data_pb2.HParamsPluginData.FromString(content.content)
  for info in data.experiment.hparam_infos:
    info.differs = info.name in HEADLINE_HPARAMS
  content.content = data.SerializeToString()


def hparam_values(hparams: Mapping[str, object]) -> dict:
  """Values the HParams plugin takes: bool, int, float, str."""
  return {name: value if isinstance(value, (bool, int, float, str))
          else str(value) for name, value in hparams.items()
          if value is not None}


def compiled_model_hparams(model: keras.Model) -> dict:
  """What compile() chose: optimizer, learning rate, loss (those it can name).

  A learning-rate schedule is named in `lr_schedule` instead of a rate.
  """
  values = {}
  optimizer = model.optimizer
  # Mixed precision wraps the user's optimizer; name the one that steps.
  optimizer = getattr(optimizer, "inner_optimizer", None) or optimizer
  if optimizer is not None:
    values["optimizer"] = type(optimizer).__name__.lower()
    rate = optimizer.get_config().get("learning_rate")
    if isinstance(rate, (int, float)):
      values["learning_rate"] = float(rate)
      values["lr_schedule"] = "constant"
    elif isinstance(rate, dict):  # A serialized schedule.
      values["lr_schedule"] = rate.get("class_name", "schedule")
  loss = _loss_name(getattr(model, "loss", None))
  if loss:
    values["loss_function"] = loss
  return values


def _loss_name(loss) -> str:
  """compile()'s loss as named in export metadata.json, or "" if none."""
  from trainer import export  # pylint: disable=import-outside-toplevel
  if loss is None:
    return ""
  name = export.loss_metadata(loss)["loss"]
  if isinstance(name, dict):
    return ",".join(f"{key}:{value}" for key, value in name.items())
  if isinstance(name, list):
    return ",".join(str(value) for value in name)
  return "" if name in (None, "<lambda>") else str(name)
