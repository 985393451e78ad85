"""What the export returns: logits and probabilities, never softmax twice."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from datasets import catalogue
from datasets import from_arrays
from launch import fit
from tests import training
from tests.activations import sigmoid as _sigmoid
from tests.activations import softmax as _softmax
from trainer import export


def _read(directory):
  metadata = json.loads((directory / "metadata.json").read_text())
  return metadata, tf.saved_model.load(str(directory / "saved_model"))


def _digits(binary: bool = False):
  """sklearn's digits scaled to [0, 1]: (train source, eval features)."""
  from sklearn import datasets as sklearn_datasets
  digits = sklearn_datasets.load_digits()
  features = (digits.images / 16.0).astype(np.float32).reshape(-1, 64)
  labels = (digits.target >= 5).astype(np.int64) if binary else digits.target
  return from_arrays(features[:1437], labels[:1437]), features[1437:]


def _fit(model_fn, directory, train):
  return fit(model_fn, train, model_dir=str(directory), global_batch_size=32,
             train_steps=30, steps_per_loop=30, cpu_devices=1,
             progress="none")


@pytest.fixture(scope="module")
def mlp_export(tmp_path_factory):
  """The built-in MLP (logits) trained briefly on 2 replicas and exported
  with the metadata `launch.run.execute` writes for it."""
  digits = catalogue.load_digits()
  trained = training.train(2, steps=30, source=digits)
  directory = tmp_path_factory.mktemp("mlp") / "export"
  metadata = export.loss_metadata("sparse_categorical_crossentropy",
                                  from_logits=True)
  export.export_model(trained.model.network, str(directory), is_chief=True,
                      metadata=metadata)
  evaluated = digits[1]
  features = (evaluated.data.features.astype(np.float32)
              * np.float32(evaluated.feature_scale))
  return directory, trained.model.network, features


def test_builtin_network_serves_logits_and_their_softmax(mlp_export):
  directory, network, features = mlp_export
  metadata, loaded = _read(directory)
  served = loaded.serving_default(tf.constant(features))
  assert sorted(served) == ["logits", "probabilities"]
  logits = served["logits"].numpy()
  probabilities = served["probabilities"].numpy()
  np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
  np.testing.assert_allclose(probabilities, _softmax(logits), atol=1e-5)
  # `serve` (Keras's endpoint) keeps returning the logits.
  np.testing.assert_array_equal(loaded.serve(tf.constant(features)).numpy(),
                                logits)
  keras_outputs = network.predict(features, verbose=0)
  np.testing.assert_allclose(logits, keras_outputs, atol=1e-5)
  np.testing.assert_array_equal(probabilities.argmax(axis=1),
                                keras_outputs.argmax(axis=1))
  # TF Serving sees the same dict under its default signature.
  signature = loaded.signatures["serving_default"]
  assert sorted(signature.structured_outputs) == ["logits", "probabilities"]


def test_metadata_says_what_each_artefact_returns(mlp_export):
  directory, _, features = mlp_export
  metadata, _ = _read(directory)
  assert metadata["loss"] == "sparse_categorical_crossentropy"
  assert metadata["from_logits"] is True
  assert metadata["outputs"] == "logits"
  assert metadata["activation"] == "softmax"
  assert metadata["saved_model"] == {
      "serve": "logits", "serving_default": ["logits", "probabilities"]}
  assert metadata["model.keras"].startswith("logits:")
  assert "keras.layers.Softmax()" in metadata["model.keras"]
  # What the note promises: the .keras network behind a Softmax layer.
  reloaded = keras.models.load_model(directory / "model.keras")
  with_softmax = keras.Sequential([reloaded, keras.layers.Softmax()])
  _, loaded = _read(directory)
  np.testing.assert_allclose(
      with_softmax.predict(features, verbose=0),
      loaded.serving_default(tf.constant(features))["probabilities"].numpy(),
      atol=1e-5)


def test_two_head_network_gets_probabilities_per_output(tmp_path):
  losses = (("digit", "sparse_categorical_crossentropy"),
            ("large", "binary_crossentropy"))
  source = catalogue.load_digits("digits_two_targets")
  trained = training.train(1, steps=0, source=source, model="two_head",
                           output_losses=losses)
  export.export_model(trained.model.network, str(tmp_path / "export"),
                      is_chief=True, metadata=export.loss_metadata(
                          dict(losses), from_logits=True))
  metadata, loaded = _read(tmp_path / "export")
  assert metadata["outputs"] == {"digit": "logits", "large": "logits"}
  assert metadata["activation"] == {"digit": "softmax", "large": "sigmoid"}
  features = tf.constant(source[1].data.features[:8].astype(np.float32)
                         * np.float32(source[1].feature_scale))
  served = {name: values.numpy()
            for name, values in loaded.serving_default(features).items()}
  assert sorted(served) == metadata["saved_model"]["serving_default"] == [
      "digit_logits", "digit_probabilities", "large_logits",
      "large_probabilities"]
  np.testing.assert_allclose(served["digit_probabilities"],
                             _softmax(served["digit_logits"]), atol=1e-5)
  np.testing.assert_allclose(served["large_probabilities"],
                             _sigmoid(served["large_logits"]), atol=1e-5)
  assert sorted(loaded.serve(features)) == ["digit", "large"]


def test_regression_output_keeps_its_keras_key(tmp_path):
  network = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
  export.export_model(network, str(tmp_path / "export"), is_chief=True,
                      metadata=export.loss_metadata("mse"))
  metadata, loaded = _read(tmp_path / "export")
  assert metadata["outputs"] == "values" and metadata["activation"] is None
  assert metadata["saved_model"]["serving_default"] == ["output_0"]
  x = tf.ones((2, 3))
  np.testing.assert_array_equal(loaded.serving_default(x)["output_0"],
                                loaded.serve(x))


def _compiled(output_activation, loss, units=10):
  def model_fn():
    model = keras.Sequential([
        keras.Input(shape=(64,)), keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(units, activation=output_activation)])
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    return model
  return model_fn


@pytest.mark.slow
def test_compiled_model_on_logits_gets_probabilities(tmp_path):
  train, features = _digits()
  result = _fit(_compiled(None, keras.losses.SparseCategoricalCrossentropy(
      from_logits=True)), tmp_path, train)
  metadata, loaded = _read(tmp_path / "export")
  assert metadata["loss"] == "sparse_categorical_crossentropy"
  assert metadata["from_logits"] is True
  assert metadata["outputs"] == "logits"
  served = loaded.serving_default(tf.constant(features))
  logits = result.model.predict(features, verbose=0)
  np.testing.assert_allclose(served["logits"].numpy(), logits, atol=1e-5)
  np.testing.assert_allclose(served["probabilities"].numpy(),
                             _softmax(logits), atol=1e-5)


def test_compiled_softmax_model_is_not_softmaxed_twice(tmp_path):
  """compile()'s string loss means probabilities, though the options'
  default `from_logits` is True."""
  train, features = _digits()
  result = _fit(_compiled("softmax", "sparse_categorical_crossentropy"),
                tmp_path, train)
  metadata, loaded = _read(tmp_path / "export")
  assert metadata["from_logits"] is False
  assert metadata["outputs"] == "probabilities"
  assert metadata["saved_model"]["serving_default"] == ["probabilities"]
  assert "Softmax" not in metadata["model.keras"]
  served = loaded.serving_default(tf.constant(features))
  assert sorted(served) == ["probabilities"]
  np.testing.assert_allclose(served["probabilities"].numpy(),
                             result.model.predict(features, verbose=0),
                             atol=1e-6)


def test_compiled_binary_model_on_a_logit_gets_its_sigmoid(tmp_path):
  train, features = _digits(binary=True)
  result = _fit(_compiled(None, keras.losses.BinaryCrossentropy(
      from_logits=True), units=1), tmp_path, train)
  metadata, loaded = _read(tmp_path / "export")
  assert (metadata["outputs"], metadata["activation"]) == ("logits",
                                                           "sigmoid")
  assert "Activation('sigmoid')" in metadata["model.keras"]
  served = loaded.serving_default(tf.constant(features))
  logits = result.model.predict(features, verbose=0)
  assert served["probabilities"].shape == (len(features), 1)
  np.testing.assert_allclose(served["probabilities"].numpy(),
                             _sigmoid(logits), atol=1e-5)


def test_builtin_run_writes_the_options_loss(tmp_path):
  """`launch.fit` with the built-in MLP: the options' loss and from_logits."""
  train, _ = _digits()
  fit(None, train, model="mlp", model_dir=str(tmp_path), global_batch_size=32,
      train_steps=10, steps_per_loop=10, cpu_devices=1, progress="none")
  metadata, _ = _read(tmp_path / "export")
  assert (metadata["loss"], metadata["from_logits"]) == (
      "sparse_categorical_crossentropy", True)
  assert metadata["outputs"] == "logits"


@pytest.mark.parametrize("loss,from_logits,expected", [
    ("sparse_categorical_crossentropy", True,
     ("sparse_categorical_crossentropy", True)),
    ("binary_crossentropy", False, ("binary_crossentropy", False)),
    ("SparseCategoricalCrossentropy", True,  # Keras reads names as probs.
     ("sparse_categorical_crossentropy", False)),
    (keras.losses.CategoricalCrossentropy(from_logits=True), False,
     ("categorical_crossentropy", True)),
    (keras.losses.BinaryFocalCrossentropy(from_logits=True), False,
     ("binary_focal_crossentropy", True)),
    (keras.losses.sparse_categorical_crossentropy, True,
     ("sparse_categorical_crossentropy", False)),
    (lambda y, p: p, False, ("<lambda>", False)),
    ({"a": "mse", "b": keras.losses.BinaryCrossentropy(from_logits=True)},
     False, ({"a": "mse", "b": "binary_crossentropy"},
             {"a": False, "b": True})),
])
def test_loss_metadata_reads_names_objects_and_functions(loss, from_logits,
                                                          expected):
  facts = export.loss_metadata(loss, from_logits=from_logits)
  assert (facts["loss"], facts["from_logits"]) == expected


def test_compiled_model_without_a_loss_is_not_given_the_options_loss():
  model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
  model.compile(optimizer="sgd")
  facts = export.model_loss_metadata(
      model, loss="sparse_categorical_crossentropy", from_logits=True)
  assert facts == {"loss": None, "from_logits": False}
  assert export.output_kinds(facts) == ("values", None)


def test_harness_model_with_a_builders_loss_object():
  from trainer import model as model_lib
  network = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
  loss = keras.losses.BinaryCrossentropy(from_logits=True)
  for loss_fn in (loss, loss.call):  # `build_parts` passes `Loss.call`.
    model = model_lib.Model(network, loss=loss_fn)
    assert export.model_loss_metadata(
        model, loss="sparse_categorical_crossentropy", from_logits=False
    ) == {"loss": "binary_crossentropy", "from_logits": True}


def test_output_kinds_from_the_loss():
  kinds = export.output_kinds({
      "loss": {"digit": "sparse_categorical_crossentropy",
               "large": "binary_crossentropy", "price": "mse",
               "mine": "my_loss"},
      "from_logits": True})
  assert kinds == ({"digit": "logits", "large": "logits", "price": "values",
                    "mine": "values"},
                   {"digit": "softmax", "large": "sigmoid", "price": None,
                    "mine": None})
  assert export.output_kinds({"loss": "categorical_crossentropy",
                              "from_logits": False}) == ("probabilities",
                                                         None)


def test_a_dict_of_losses_follows_list_outputs_in_their_order():
  inputs = keras.Input((4,))
  large = keras.layers.Dense(1, name="large")(inputs)
  digit = keras.layers.Dense(3, name="digit")(inputs)
  losses = {"digit": keras.losses.SparseCategoricalCrossentropy(
                from_logits=True),
            "large": keras.losses.BinaryCrossentropy(from_logits=True)}
  as_list = keras.Model(inputs, [large, digit])
  as_list.compile(optimizer="adam", loss=losses)
  metadata = export.model_loss_metadata(as_list, loss="unused",
                                        from_logits=False)
  assert metadata["loss"] == ["binary_crossentropy",
                              "sparse_categorical_crossentropy"]
  assert export.output_kinds(metadata) == (["logits", "logits"],
                                           ["sigmoid", "softmax"])
  as_dict = keras.Model(inputs, {"large": large, "digit": digit})
  as_dict.compile(optimizer="adam", loss=losses)
  assert export.model_loss_metadata(as_dict, loss="unused",
                                    from_logits=False)["loss"] == {
      "digit": "sparse_categorical_crossentropy",
      "large": "binary_crossentropy"}
