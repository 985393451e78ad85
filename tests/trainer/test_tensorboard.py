"""What TensorBoard shows, read back with TensorBoard's own loaders.

The HParams checks go through the HParams plugin's backend (the code behind
the HParams tab), so a session the tab could not match to its metrics fails.
"""

import dataclasses
import glob
import os

import keras
import pytest
from tensorboard import context
from tensorboard.backend.event_processing import data_provider
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.backend.event_processing import plugin_event_multiplexer
from tensorboard.compat.proto import config_pb2
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import backend_context
from tensorboard.plugins.hparams import get_experiment
from tensorboard.plugins.hparams import list_session_groups
import tensorflow as tf

from datasets.config import DataConfig
from launch.options import resolve as config_lib
from tests.training import run_config
from trainer import model_summary
from trainer import tensorboard
from trainer.config import TrainConfig

TRAIN = {"loss": 0.5, "accuracy": 0.8, "learning_rate": 0.01,
         "steps_per_sec": 100.0, "examples_per_sec": 6400.0}
EVAL = {"loss": 0.6, "accuracy": 0.75, "examples": 360}


def _hparams_backend(logdir):
  """The HParams plugin's backend over `logdir`, as `tensorboard` builds it."""
  multiplexer = plugin_event_multiplexer.EventMultiplexer()
  multiplexer.AddRunsFromDirectory(str(logdir))
  multiplexer.Reload()
  provider = data_provider.MultiplexerDataProvider(multiplexer, str(logdir))
  return backend_context.Context(base_plugin.TBContext(
      logdir=str(logdir), multiplexer=multiplexer, data_provider=provider))


def read_experiment(logdir) -> api_pb2.Experiment:
  """What the HParams tab's columns come from."""
  return get_experiment.Handler(context.RequestContext(),
                                _hparams_backend(logdir), "",
                                api_pb2.GetExperimentRequest()).run()


def read_session_groups(logdir) -> dict:
  """{trial id: {"sessions", "hparams", "metrics": {(group, tag): value}}}."""
  request = api_pb2.ListSessionGroupsRequest(
      allowed_statuses=[api_pb2.STATUS_UNKNOWN, api_pb2.STATUS_SUCCESS,
                        api_pb2.STATUS_FAILURE, api_pb2.STATUS_RUNNING],
      start_index=0, slice_size=100)
  response = list_session_groups.Handler(
      context.RequestContext(), _hparams_backend(logdir), "", request).run()
  return {group.name: {
      "sessions": [session.name for session in group.sessions],
      "hparams": {name: getattr(value, value.WhichOneof("kind"))
                  for name, value in group.hparams.items()},
      "metrics": {(value.name.group, value.name.tag): value.value
                  for value in group.metric_values}}
          for group in response.session_groups}


def read_run(logdir) -> event_accumulator.EventAccumulator:
  accumulator = event_accumulator.EventAccumulator(
      str(logdir), size_guidance={event_accumulator.TENSORS: 0})
  accumulator.Reload()
  return accumulator


def plugin_tags(accumulator, plugin: str) -> set:
  return {tag for tag in accumulator.Tags()["tensors"]
          if accumulator.SummaryMetadata(tag).plugin_data.plugin_name
          == plugin}


def write_run(model_dir, hparams, **options):
  writer = tensorboard.TensorBoardWriter(
      os.path.join(model_dir, "summaries"), hparams=hparams,
      trial_id=str(model_dir), **options)
  writer.write("train", 10, TRAIN)
  writer.write("eval", 10, EVAL)
  writer.close()


def test_session_sits_above_both_splits_and_scores_eval(tmp_path):
  write_run(tmp_path, {"model": "mlp", "learning_rate": 0.01})
  assert plugin_tags(read_run(tmp_path / "summaries"), "hparams") == {
      "_hparams_/experiment", "_hparams_/session_start_info"}
  assert not plugin_tags(read_run(tmp_path / "summaries" / "train"),
                         "hparams")
  groups = read_session_groups(tmp_path)
  assert list(groups) == [str(tmp_path)]
  assert groups[str(tmp_path)]["sessions"] == ["summaries"]
  assert groups[str(tmp_path)]["metrics"] == {
      ("eval", "loss"): pytest.approx(0.6),
      ("eval", "accuracy"): pytest.approx(0.75),
      ("train", "loss"): pytest.approx(0.5),
      ("train", "accuracy"): pytest.approx(0.8)}
  metrics = {(info.name.group, info.name.tag): info.display_name
             for info in read_experiment(tmp_path).metric_infos}
  assert metrics == {("eval", "loss"): "val loss",
                     ("eval", "accuracy"): "val accuracy",
                     ("train", "loss"): "train loss",
                     ("train", "accuracy"): "train accuracy"}


def test_runs_with_equal_hparams_under_one_parent_stay_apart(tmp_path):
  hparams = {"model": "mlp", "learning_rate": 0.01, "clip_norm": 0.0}
  write_run(tmp_path / "first", hparams)
  write_run(tmp_path / "second", hparams)
  groups = read_session_groups(tmp_path)
  assert sorted(groups) == [str(tmp_path / "first"),
                            str(tmp_path / "second")]
  assert all(group["metrics"][("eval", "accuracy")] == pytest.approx(0.75)
             and group["hparams"]["learning_rate"] == pytest.approx(0.01)
             for group in groups.values())


def test_headline_hparams_are_the_default_columns(tmp_path):
  write_run(tmp_path, {"accumulate_steps": 1, "clip_norm": 0.0, "l2": 0.0,
                       "dropout": 0.25, "dataset": "digits", "model": "mlp",
                       "optimizer": "adam", "learning_rate": 0.01,
                       "global_batch_size": 64})
  infos = read_experiment(tmp_path).hparam_infos
  # The dashboard shows the first five, `differs` first.
  assert [info.name for info in infos][:5] == sorted(
      tensorboard.HEADLINE_HPARAMS)


def test_examples_and_loop_numbers_stay_out_of_the_first_charts(tmp_path):
  write_run(tmp_path, None)
  assert plugin_tags(read_run(tmp_path / "summaries" / "train"),
                     "scalars") == {"loss", "accuracy",
                                    "schedule/learning_rate",
                                    "speed/steps_per_sec",
                                    "speed/examples_per_sec"}
  assert plugin_tags(read_run(tmp_path / "summaries" / "eval"),
                     "scalars") == {"loss", "accuracy"}
  # No hparams: no session, and no run of its own.
  assert sorted(os.listdir(tmp_path / "summaries")) == ["eval", "train"]


def test_graph_of_the_first_train_loop(tmp_path):
  variable = tf.Variable(1.0)

  @tf.function
  def train_loop():
    variable.assign_add(1.0)

  writer = tensorboard.TensorBoardWriter(str(tmp_path), trace_graph=True)
  train_loop()
  writer.write("train", 5, TRAIN)
  writer.close()
  run = read_run(tmp_path / "train")
  assert plugin_tags(run, "graph_run_metadata_graph") == {
      tensorboard.GRAPH_TAG}
  event = run.Tensors(tensorboard.GRAPH_TAG)[0]
  metadata = config_pb2.RunMetadata.FromString(
      tf.make_ndarray(event.tensor_proto).item())
  assert event.step == 5 and metadata.function_graphs


def test_no_graph_when_the_first_write_is_an_evaluation(tmp_path):
  writer = tensorboard.TensorBoardWriter(str(tmp_path), trace_graph=True)
  writer.write("eval", 100, EVAL)
  writer.write("train", 150, TRAIN)
  writer.close()
  assert not plugin_tags(read_run(tmp_path / "train"),
                         "graph_run_metadata_graph")


def test_model_summary_is_monospace_markdown(tmp_path):
  network = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)],
                             name="tiny")
  text = model_summary.describe(network)
  assert 'Model: "tiny"' in text and "Total params: 15" in text
  assert "Param #" in text  # Not cropped by rich's 80 columns.
  tensorboard.TensorBoardWriter(str(tmp_path), model_summary=text).close()
  run = read_run(tmp_path / "train")
  event = run.Tensors(tensorboard.MODEL_SUMMARY_TAG)[0]
  markdown = tf.make_ndarray(event.tensor_proto).item().decode()
  assert event.step == 0
  assert all(line.startswith("    ") for line in markdown.splitlines())
  assert "Total params: 15" in markdown


@pytest.mark.parametrize("optimizer, loss, expected", [
    (keras.optimizers.SGD(0.05), "mse",
     {"optimizer": "sgd", "learning_rate": 0.05, "lr_schedule": "constant",
      "loss_function": "mse"}),
    (keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-3)),
     keras.losses.SparseCategoricalCrossentropy(from_logits=True),
     {"optimizer": "adam", "learning_rate": 1e-3, "lr_schedule": "constant",
      "loss_function": "sparse_categorical_crossentropy"}),
    (keras.optimizers.RMSprop(keras.optimizers.schedules.ExponentialDecay(
        0.1, 10, 0.5)), lambda y, p: (y - p) ** 2,
     {"optimizer": "rmsprop", "lr_schedule": "ExponentialDecay"}),
])
def test_compiled_model_hparams_are_compiles_choices(optimizer, loss,
                                                     expected):
  model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
  model.compile(optimizer=optimizer, loss=loss)
  assert tensorboard.compiled_model_hparams(model) == pytest.approx(expected)


def _run_config(model_dir, **train):
  train = {"train_steps": 100, "steps_per_loop": 20, "eval_every": 50,
           "checkpoint_every": 100, **train}
  return config_lib.RunConfig(
      data=DataConfig(global_batch_size=64),
      train=TrainConfig(model_dir=str(model_dir), **train), cpu_devices=2)


@pytest.fixture(scope="module")
def profiled_run(tmp_path_factory):
  """100 steps of the MLP on digits, steps 21..60 profiled, then evaluated."""
  model_dir = tmp_path_factory.mktemp("profiled")
  run_config(_run_config(model_dir, profile_steps=(21, 60)))
  return model_dir


def test_training_run_is_one_hparams_row_scored_on_eval(profiled_run):
  groups = read_session_groups(profiled_run)
  assert list(groups) == [str(profiled_run)]  # The trial id is the model_dir.
  group = groups[str(profiled_run)]
  assert group["sessions"] == ["summaries"]
  assert set(group["metrics"]) == {("eval", "loss"), ("eval", "accuracy"),
                                   ("train", "loss"), ("train", "accuracy")}
  assert group["metrics"][("eval", "accuracy")] > 0.5
  hparams = group["hparams"]
  assert hparams["loss_function"] == "sparse_categorical_crossentropy"
  assert "loss" not in hparams and "examples" not in hparams
  assert hparams["optimizer"] == "adam" and hparams["replicas"] == 2


def test_training_run_writes_model_text_and_graph(profiled_run):
  run = read_run(profiled_run / "summaries" / "train")
  assert plugin_tags(run, "text") == {tensorboard.MODEL_SUMMARY_TAG}
  assert plugin_tags(run, "graph_run_metadata_graph") == {
      tensorboard.GRAPH_TAG}
  assert run.Tensors(tensorboard.GRAPH_TAG)[0].step == 20  # First loop.
  assert "examples" not in plugin_tags(
      read_run(profiled_run / "summaries" / "eval"), "scalars")


def test_profile_marks_every_profiled_step(profiled_run):
  from tensorflow.tsl.profiler.protobuf import xplane_pb2  # Heavy import.
  traces = glob.glob(str(profiled_run / "summaries" / "train" / "plugins" /
                         "profile" / "*" / "*.xplane.pb"))
  assert len(traces) == 1
  with open(traces[0], "rb") as stream:
    space = xplane_pb2.XSpace.FromString(stream.read())
  steps = []
  for plane in space.planes:
    stat_names = {key: value.name
                  for key, value in plane.stat_metadata.items()}
    event_names = {key: value.name
                   for key, value in plane.event_metadata.items()}
    steps += [stat.int64_value for line in plane.lines
              for event in line.events
              if event_names.get(event.metadata_id) == "train"
              for stat in event.stats
              if stat_names.get(stat.metadata_id) == "step_num"]
  # Every profiled step is one call with its own marker.
  assert sorted(steps) == list(range(21, 61))


def test_evaluate_mode_writes_no_hparams_session(profiled_run):
  summaries_dir = profiled_run / "summaries"
  run_config(dataclasses.replace(_run_config(profiled_run), mode="evaluate"))
  # Still the training's one session file; no split has hparams.
  assert len(glob.glob(str(summaries_dir / "events.out.tfevents.*"))) == 1
  assert not any(plugin_tags(read_run(summaries_dir / split), "hparams")
                 for split in os.listdir(summaries_dir)
                 if os.path.isdir(summaries_dir / split))
  assert len(read_session_groups(profiled_run)) == 1


def test_compiled_model_records_compiles_optimizer(tmp_path):
  def model_fn():
    model = keras.Sequential([keras.Input((8, 8, 1)),
                              keras.layers.Flatten(),
                              keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.SGD(0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True), metrics=["accuracy"])
    return model

  config = _run_config(tmp_path, train_steps=20)
  run_config(config, model_fn=model_fn)
  hparams = read_session_groups(tmp_path)[str(tmp_path)]["hparams"]
  assert hparams["optimizer"] == "sgd"
  assert hparams["learning_rate"] == pytest.approx(0.05)
  assert hparams["loss_function"] == "sparse_categorical_crossentropy"
  assert "dropout" not in hparams and "clip_norm" not in hparams
