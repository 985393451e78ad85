"""A user's network from a module outside the repo: --model=module:fn."""

import sys

import pytest

from tests.processes import launch_in_this_process, run_launch

USER_MODULE = '''
import keras


def build(input_shape, spec):
  """A functional model with the built-ins' signature."""
  inputs = keras.Input(shape=input_shape)
  x = keras.layers.Flatten()(inputs)
  x = keras.layers.Dense(32, activation="tanh")(x)
  x = keras.layers.Dropout(spec.dropout)(x)
  return keras.Model(inputs, spec.output_layer()(x), name="user_net")


def build_with_objectives(input_shape, spec):
  """The notes' compile() choices, made by the builder: loss and metrics."""
  network = build(input_shape, spec)
  loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  top3 = keras.metrics.SparseTopKCategoricalAccuracy(k=3, name="top3")
  return network, loss, ["accuracy", top3]


def build_garbage(input_shape, spec):
  return "a string"


def build_failing(input_shape, spec):
  raise ValueError("this builder wants 3-channel images")


not_a_builder = 3
'''


@pytest.fixture
def user_dir(tmp_path):
  (tmp_path / "my_models.py").write_text(USER_MODULE)
  return tmp_path


@pytest.mark.slow
def test_user_builder_trains_on_two_replicas(user_dir, tmp_path):
  result = run_launch(["--model=my_models:build", "--cpu_devices=2",
                       "--train_steps=300", "--dropout=0.1",
                       f"--model_dir={tmp_path / 'run'}"],
                      PYTHONPATH=str(user_dir))
  assert result.returncode == 0, result.stderr[-3000:]
  final = result.stdout.strip().splitlines()[-1]
  accuracy = float(final.split("accuracy ")[1].split()[0].rstrip(","))
  assert accuracy >= 0.9
  assert (tmp_path / "run" / "export" / "model.keras").exists()


@pytest.mark.slow
def test_user_builder_may_bring_its_loss_and_metrics(user_dir, tmp_path):
  result = run_launch(["--model=my_models:build_with_objectives",
                       "--cpu_devices=2", "--train_steps=200",
                       f"--model_dir={tmp_path / 'run'}"],
                      PYTHONPATH=str(user_dir))
  assert result.returncode == 0, result.stderr[-3000:]
  final = result.stdout.strip().splitlines()[-1]
  assert "accuracy" in final and "top3" in final, final
  top3 = float(final.split("top3 ")[1].split()[0].rstrip(","))
  accuracy = float(final.split("accuracy ")[1].split()[0].rstrip(","))
  assert 0.9 <= accuracy <= top3 <= 1.0


@pytest.mark.parametrize("model,message", [
    ("my_models:build_garbage", "returned str, not a keras.Model"),
    ("my_models:build_failing", "cannot build --model=my_models:build_failing:"
     " this builder wants 3-channel images"),
    ("missing_module:build", "cannot import missing_module"),
    ("my_models:nothing", "my_models has no nothing"),
    ("my_models:not_a_builder", "not_a_builder is not callable"),
    ("my_models:", "unknown model 'my_models:'"),
])
def test_bad_user_builder_exits_2(user_dir, tmp_path, monkeypatch, model,
                                  message):
  # In this process through launch.main (the same path as a process; a real
  # process with a failing build is tested in test_cli.py).
  monkeypatch.syspath_prepend(str(user_dir))
  monkeypatch.delitem(sys.modules, "my_models", raising=False)
  code, errors = launch_in_this_process([f"--model={model}",
                                         f"--model_dir={tmp_path / 'run'}"])
  assert code == 2
  assert len(errors) == 1 and message in errors[0], errors
  assert not (tmp_path / "run").exists()
