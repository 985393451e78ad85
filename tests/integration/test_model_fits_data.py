"""A model that does not fit its data: one sentence, nothing written.

The data is made as a user makes it (arrays, a CSV file, TFRecord files of
tf.train.Examples); `fit` runs in this process, one case as a real
`python -m launch` process.
"""

import csv
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from datasets import from_arrays, from_tfrecords
from launch import fit
from launch.errors import ConfigError, RunFailed
from tests.processes import run_launch

_RNG = np.random.default_rng(0)
X10 = _RNG.normal(size=(64, 10)).astype("float32")
Y3 = (np.arange(64) % 3).astype("int64")  # Labels 0..2.
FLOATS = _RNG.normal(size=64).astype("float32")


def _fit(model_fn, train, model_dir, eval_data=None, **options):
  options = {"train_steps": 4, "steps_per_loop": 2, **options}
  return fit(model_fn, train, eval_data=eval_data, model_dir=str(model_dir),
             global_batch_size=16, progress="none", **options)


def _refused(model_fn, train, tmp_path, eval_data=None, **options) -> str:
  """The one-sentence ConfigError; asserts that nothing was written."""
  with pytest.raises(ConfigError) as raised:
    _fit(model_fn, train, tmp_path / "run", eval_data=eval_data, **options)
  message = str(raised.value)
  assert len(message.splitlines()) == 1, message
  assert "Traceback" not in message and "Exception encountered" not in message
  assert not (tmp_path / "run").exists()  # No config.json, no summaries/.
  return message


def _sequential(units=3, inputs=10, activation=None, loss=None):
  def model_fn():
    model = keras.Sequential([keras.Input((inputs,)),
                              keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(units,
                                                 activation=activation)])
    if loss is not None:
      model.compile(optimizer="adam", loss=loss)
    return model
  return model_fn


def _functional_12():
  inputs = keras.Input((12,), name="features")
  return keras.Model(inputs, keras.layers.Dense(3)(inputs))


class _Subclassed(keras.Model):
  """Declares no inputs: its first Dense was built for 12 features."""

  def __init__(self):
    super().__init__()
    self.hidden = keras.layers.Dense(8)
    self.hidden.build((None, 12))
    self.out = keras.layers.Dense(3)

  def call(self, x):
    return self.out(self.hidden(x))


@pytest.mark.parametrize("model_fn, expected", [
    (_sequential(inputs=12), "the model expects inputs of shape (None, 12),"
     " but the training data's features have shape (10,); build the model"
     " with keras.Input(shape=(10,))"),
    (_sequential(inputs=12, loss="sparse_categorical_crossentropy"),
     "the model expects inputs of shape (None, 12), but the training data's"
     " features have shape (10,)"),
    (_functional_12, "the model expects inputs of shape (None, 12)"),
    # Keras's own cause, out of its "Exception encountered when calling".
    (_Subclassed, "features (10,) float32: Input 0 with name 'None' of layer"
     " 'dense"),
])
def test_input_shape_mismatch_names_both_shapes(tmp_path, model_fn,
                                                expected):
  message = _refused(model_fn, from_arrays(X10, Y3), tmp_path)
  assert expected in message
  if model_fn is _Subclassed:
    assert ("expected axis -1 of input shape to have value 12, but received"
            " input with shape (1, 10)") in message


def test_named_inputs_missing_from_the_data(tmp_path):
  def model_fn():
    a, b = keras.Input((4,), name="a"), keras.Input((6,), name="b")
    merged = keras.layers.Concatenate()([a, b])
    return keras.Model({"a": a, "b": b}, keras.layers.Dense(3)(merged))

  message = _refused(model_fn, from_arrays(
      {"a": X10[:, :4], "c": X10[:, 4:]}, Y3), tmp_path)
  assert "input 'b' is missing from the training data" in message
  message = _refused(model_fn, from_arrays(X10, Y3), tmp_path)
  assert "takes the inputs a, b, but the training data has one" in message


def _string_tfrecords(tmp_path) -> str:
  """A TFRecord file whose "x" feature is a comma-joined string."""
  path = str(tmp_path / "train.tfrecord")
  with tf.io.TFRecordWriter(path) as writer:
    for row, label in zip(X10, Y3):
      text = ",".join(f"{value:.3f}" for value in row).encode()
      writer.write(tf.train.Example(features=tf.train.Features(feature={
          "x": tf.train.Feature(bytes_list=tf.train.BytesList(value=[text])),
          "label": tf.train.Feature(int64_list=tf.train.Int64List(
              value=[int(label)]))})).SerializeToString())
  return path


def test_string_tfrecord_feature_for_a_float_model(tmp_path):
  source = from_tfrecords(
      _string_tfrecords(tmp_path), label="label",
      features={"x": tf.io.FixedLenFeature([1], tf.string)})
  message = _refused(_sequential(inputs=1), source, tmp_path)
  assert ("the model expects float32 values, but the training data's"
          " features are strings") in message
  message = _refused(_Subclassed, source, tmp_path)
  assert "(1,) string" in message and "the features are strings" in message


@pytest.mark.parametrize("loss, origin", [
    (None, "loss=sparse_categorical_crossentropy"),  # The configured one.
    ("sparse_categorical_crossentropy",
     "compile()'s loss sparse_categorical_crossentropy")])
def test_sparse_labels_against_one_unit(tmp_path, loss, origin):
  message = _refused(_sequential(units=1, loss=loss), from_arrays(X10, Y3),
                     tmp_path)
  assert message.endswith(
      f"{origin} needs one output unit per class, but the training data's"
      " labels go up to 2 (3 classes) and the model's output has 1 unit; end"
      " the model with Dense(3), or, if the labels are numbers to predict, a"
      " regression loss such as mse.")


@pytest.mark.parametrize("model_fn, labels, expected", [
    (_sequential(3, activation="softmax", loss="categorical_crossentropy"),
     keras.utils.to_categorical(Y3, 4), "labels have shape (None, 4) (4"
     " columns) and the model's output (None, 3) (3 units)"),
    (_sequential(3, activation="softmax", loss="categorical_crossentropy"),
     Y3, "needs one-hot labels of width 3, but the training data's labels"
     " are class indices; use sparse_categorical_crossentropy"),
    (_sequential(3, loss="sparse_categorical_crossentropy"),
     keras.utils.to_categorical(Y3, 3), "takes class indices, but the"
     " training data's labels have shape (None, 3)"),
    # Keras trains this without a word (labels 2 count as 1).
    (_sequential(1, activation="sigmoid", loss="binary_crossentropy"),
     Y3, "binary_crossentropy needs labels 0 or 1, but the training data's"
     " labels go up to 2"),
    (_sequential(3, loss="mse"), FLOATS, "mean_squared_error compares each"
     " label with one output value, but the training data's labels have"
     " shape (None,) and the model's output (None, 3)"),
    (_sequential(3, loss="sparse_categorical_crossentropy"), FLOATS,
     "needs integer class labels, but the training data's labels are float"
     " numbers (regression targets)"),
    # (An uncompiled 1-unit model on float labels is a regression: mse.)
])
def test_labels_that_do_not_fit_the_output(tmp_path, model_fn, labels,
                                            expected):
  assert expected in _refused(model_fn, from_arrays(X10, labels), tmp_path)


def _two_outputs(kind, compiled):
  def model_fn():
    inputs = keras.Input((10,))
    heads = [keras.layers.Dense(3, name="a")(inputs),
             keras.layers.Dense(1, name="b")(inputs)]
    model = keras.Model(inputs, dict(zip("ab", heads)) if kind == "dict"
                        else heads)
    if compiled:
      model.compile(optimizer="adam", loss={
          "a": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
          "b": "mse"})
    return model
  return model_fn


@pytest.mark.slow
def test_outputs_and_labels_must_correspond(tmp_path):
  keyed = {"a": Y3, "c": FLOATS}
  message = _refused(_two_outputs("dict", True), from_arrays(X10, keyed),
                     tmp_path)
  assert "the model's outputs are a, b, but the training data's labels are" \
         " a, c; name the labels like the outputs" in message
  for kind in ("dict", "list"):
    message = _refused(_two_outputs(kind, True), from_arrays(X10, Y3),
                       tmp_path)
    assert "the model has 2 outputs (a, b), but the training data has one" \
           " label array" in message
  message = _refused(_two_outputs("dict", False), from_arrays(X10, Y3),
                     tmp_path)
  assert "give one loss per output (loss=name:loss,name:loss" in message
  # Right: labels keyed like the outputs (a list's by the layers' names).
  for kind in ("dict", "list"):
    result = _fit(_two_outputs(kind, True),
                  from_arrays(X10, {"a": Y3, "b": FLOATS}),
                  tmp_path / kind)
    assert result.step == 4


def test_eval_data_is_checked_too(tmp_path):
  train = from_arrays(X10, Y3)
  message = _refused(_sequential(), train, tmp_path, eval_data=from_arrays(
      X10[:20], np.arange(20) % 4))
  assert "the eval data's labels go up to 3 (4 classes)" in message
  message = _refused(_sequential(), train, tmp_path, eval_data=from_arrays(
      _RNG.normal(size=(20, 11)).astype("float32"), Y3[:20]))
  assert "the eval data's features are (11,) float32, but the training" \
         " data's (10,) float32" in message


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy",
                                  "categorical_crossentropy"])
def test_column_labels_give_the_same_run_as_flat_ones(tmp_path, loss):
  """Labels [N, 1] (e.g. df[["y"]].values) were one-hot to [N, 1, C]: the
  sparse loss gave silently wrong precision and mse, the other crashed."""
  logs = []
  for labels in (Y3, Y3[:, None]):
    result = _fit(_sequential(), from_arrays(X10, labels),
                  tmp_path / str(labels.ndim),
                  eval_data=from_arrays(X10, labels), seed=1, loss=loss,
                  metrics="accuracy,precision,mse")
    logs.append(result.logs)
  assert logs[0] == pytest.approx(logs[1], rel=1e-6)


def test_a_run_that_saved_no_checkpoint_never_blocks_the_corrected_rerun(
    tmp_path, caplog):
  model_dir = tmp_path / "run"
  train = from_arrays(X10, (X10[:, 0] > 0).astype("int64"))
  with pytest.raises(RunFailed, match="loss became nan"):
    _fit(_sequential(2), train, model_dir, optimizer="sgd",
         learning_rate=1e12, train_steps=40)
  assert "config.json" in os.listdir(model_dir)
  assert not os.path.exists(model_dir / "checkpoints")
  with caplog.at_level("INFO"):
    result = _fit(_sequential(2), train, model_dir, optimizer="sgd",
                  learning_rate=0.1, train_steps=40)
  assert result.step == 40
  assert "saved no checkpoint: nothing to resume" in caplog.text
  # Now a checkpoint exists: other settings are refused as before.
  with pytest.raises(ConfigError, match="learning_rate=0.1 -> 0.2"):
    _fit(_sequential(2), train, model_dir, optimizer="sgd",
         learning_rate=0.2, train_steps=60)


USER_MODULE = '''
import keras


def build():
  model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(3)])
  model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
  return model
'''


@pytest.mark.slow
def test_cli_input_mismatch_exits_2_with_one_line(tmp_path):
  (tmp_path / "my_model.py").write_text(USER_MODULE)
  data = tmp_path / "table.csv"
  with open(data, "w", newline="", encoding="utf-8") as stream:
    writer = csv.writer(stream)
    writer.writerow([f"x{i}" for i in range(10)] + ["label"])
    writer.writerows([*row, label] for row, label in zip(X10, Y3))
  result = run_launch([f"--train_data={data}", "--label_column=label",
                       "--model=my_model:build", "--train_steps=4",
                       f"--model_dir={tmp_path / 'run'}"],
                      PYTHONPATH=str(tmp_path))
  assert result.returncode == 2, result.stderr[-2000:]
  assert "Traceback" not in result.stderr
  errors = [line for line in result.stderr.splitlines()
            if line.startswith("error:")]
  assert errors == [
      "error: --model=my_model:build does not fit its data: the model expects"
      " inputs of shape (None, 12), but the training data's features have"
      " shape (10,); build the model with keras.Input(shape=(10,)), or give"
      " features of shape (12,)."]
  assert not (tmp_path / "run").exists()


def test_labels_the_checks_cannot_see_fail_in_one_sentence(tmp_path):
  """A dataset function does not say its classes: the step's error, short."""
  import tensorflow as tf

  def dataset_fn(input_context):
    batch = input_context.get_per_replica_batch_size(16)
    return tf.data.Dataset.from_tensor_slices((X10, Y3)).batch(batch)

  from datasets import from_dataset_fn
  with pytest.raises(RunFailed) as raised:
    _fit(_sequential(units=1), from_dataset_fn(dataset_fn, num_examples=64),
         tmp_path / "run")
  # TensorFlow's own cause differs once op determinism is on in the process
  # ("indices[1] = 1 is not in [0, 1)" instead of "Received a label value").
  message = str(raised.value)
  assert message.startswith("training stopped on data the model cannot take (")
  assert "[0, 1)" in message and "\n" not in message
  assert message.endswith("); check the labels and features against the"
                          " model's outputs, inputs and loss.")


def test_a_built_in_network_is_sized_by_the_training_classes(tmp_path):
  message = _refused(None, from_arrays(X10, Y3), tmp_path, model="mlp",
                     eval_data=from_arrays(X10[:20], np.arange(20) % 4))
  assert message == (
      "model=mlp does not fit its data: the eval data's labels go up to 3,"
      " but the training data's only to 2, which sized the network's output;"
      " give training data that holds every class.")
