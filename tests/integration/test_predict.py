"""`python -m launch.predict` in a fresh process reproduces the trained model."""

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from datasets import files
from datasets import catalogue
from datasets import errors
from tests import training
from tests.activations import sigmoid, softmax
from tests.processes import REPO_ROOT, harness_env
from trainer import export
from trainer import predict


def run_predict(args):
  return subprocess.run([sys.executable, "-m", "launch.predict", *args],
                        env=harness_env(), capture_output=True, text=True,
                        timeout=120, cwd=REPO_ROOT, check=False)


def trained_export(tmp_path, source, **train_config):
  """Trains on 2 replicas, exports, returns (export dir, in-process outputs).

  `source` is a (train, eval) pair; the outputs (logits) are of the eval
  features. The metadata is what `launch.run.execute` writes for the options.
  """
  trained = training.train(2, steps=40, source=source, **train_config)
  source = source[1]
  eval_features = source.data.features
  directory = str(tmp_path / "export")
  losses = export.loss_metadata(
      dict(train_config.get("output_losses", ()))
      or train_config.get("loss", "sparse_categorical_crossentropy"),
      from_logits=True)
  export.export_model(trained.model.network, directory, is_chief=True,
                      metadata={"feature_scale": source.feature_scale,
                                "input_shape": source.input_shape, **losses})
  scaled = {name: (array.astype(np.float32) * np.float32(source.feature_scale))
            for name, array in (eval_features.items()
                                if isinstance(eval_features, dict)
                                else [("x", eval_features)])}
  inputs = scaled if isinstance(eval_features, dict) else scaled["x"]
  # As the trained model predicts: a compiled forward pass, batches of 256.
  forward = tf.function(lambda x: trained.model.network(x, training=False))
  outputs = [forward(tf.nest.map_structure(lambda a: a[i:i + 256], inputs))
             for i in range(0, source.num_examples, 256)]
  return directory, tf.nest.map_structure(
      lambda *parts: np.concatenate([p.numpy() for p in parts]), *outputs)


@pytest.mark.slow
def test_fresh_process_predicts_exactly_what_the_trained_mlp_did(tmp_path):
  digits = catalogue.load_digits()
  directory, expected = trained_export(tmp_path, digits)
  features = digits[1].data.features
  np.save(tmp_path / "x.npy", features)
  np.savez(tmp_path / "x.npz", pixels=features)
  np.savetxt(tmp_path / "x.csv", features.reshape(len(features), -1),
             delimiter=",", fmt="%d")
  result = run_predict([f"--export_dir={directory}",
                        f"--input={tmp_path / 'x.npy'}",
                        f"--output={tmp_path / 'p.npy'}", "--classes"])
  assert result.returncode == 0, result.stderr[-2000:]
  assert ("Wrote 360 predictions of shape (10,) to"
          in result.stdout), result.stdout
  assert ": probabilities (softmax of the network's logits)." in result.stdout
  # The CLI writes probabilities: those of the SavedModel's serving_default.
  probabilities = np.load(tmp_path / "p.npy")
  np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
  np.testing.assert_allclose(probabilities, softmax(expected), atol=1e-5)
  loaded = tf.saved_model.load(f"{directory}/saved_model")
  served = loaded.serving_default(tf.constant(
      features.astype(np.float32) * np.float32(digits[1].feature_scale)))
  np.testing.assert_allclose(probabilities, served["probabilities"],
                             atol=1e-6)
  np.testing.assert_array_equal(np.load(tmp_path / "p.classes.npy"),
                                expected.argmax(axis=1))
  # The logits (the `serve` endpoint) of every input format, in this
  # process (the export is still loaded from disk, not the trained model).
  for name, output in (("x.npy", "l.npy"), ("x.npz", "l.npz"),
                       ("x.csv", "l.csv")):
    inputs = files.load_features(str(tmp_path / name), (8, 8, 1))
    files.write_predictions(str(tmp_path / output),
                            predict.predict(directory, inputs))
  logits = [np.load(tmp_path / "l.npy"),
            np.load(tmp_path / "l.npz")["predictions"],
            np.loadtxt(tmp_path / "l.csv", delimiter=",", dtype=np.float32)]
  for predicted in logits:
    np.testing.assert_array_equal(predicted, expected)


@pytest.mark.slow
def test_two_input_model_predicts_from_an_npz(tmp_path):
  halves = catalogue.load_digits("digits_halves")
  directory, expected = trained_export(
      tmp_path, halves, model="functional", loss="binary_crossentropy")
  np.savez(tmp_path / "x.npz", **halves[1].data.features)
  result = run_predict([f"--export_dir={directory}",
                        f"--input={tmp_path / 'x.npz'}",
                        f"--output={tmp_path / 'p.npy'}", "--classes"])
  assert result.returncode == 0, result.stderr[-2000:]
  assert ": probabilities (sigmoid of the network's logits)." in result.stdout
  probabilities = np.load(tmp_path / "p.npy")
  assert probabilities.shape == (360, 1)
  np.testing.assert_allclose(probabilities, sigmoid(expected), atol=1e-6)
  np.testing.assert_array_equal(np.load(tmp_path / "p.classes.npy"),
                                (expected[:, 0] > 0).astype(np.int32))


@pytest.mark.slow
def test_two_output_model_writes_one_npz_key_per_output(tmp_path):
  targets = catalogue.load_digits("digits_two_targets")
  directory, expected = trained_export(
      tmp_path, targets, model="two_head", output_losses=(
          ("digit", "sparse_categorical_crossentropy"),
          ("large", "binary_crossentropy")))
  np.save(tmp_path / "x.npy", targets[1].data.features)
  result = run_predict([f"--export_dir={directory}",
                        f"--input={tmp_path / 'x.npy'}",
                        f"--output={tmp_path / 'p.npz'}",
                        "--noprobabilities"])
  assert result.returncode == 0, result.stderr[-2000:]
  assert ": digit: logits, large: logits." in result.stdout, result.stdout
  with np.load(tmp_path / "p.npz") as predicted:
    assert sorted(predicted.files) == ["digit", "large"]
    for name in ("digit", "large"):
      np.testing.assert_array_equal(predicted[name], expected[name])
  # Per output, in this process: what the CLI writes without the flag.
  metadata = predict.read_metadata(directory)
  assert metadata["activation"] == {"digit": "softmax", "large": "sigmoid"}
  probabilities = export.to_probabilities(
      predict.predict(directory, targets[1].data.features),
      metadata["activation"])
  np.testing.assert_allclose(probabilities["digit"],
                             softmax(expected["digit"]), atol=1e-6)
  np.testing.assert_allclose(probabilities["large"],
                             sigmoid(expected["large"]), atol=1e-6)


@pytest.mark.slow
def test_list_output_model_writes_one_npz_key_per_output(tmp_path):
  import keras  # pylint: disable=import-outside-toplevel
  inputs = keras.Input((4,))
  network = keras.Model(inputs, [keras.layers.Dense(3)(inputs),
                                 keras.layers.Dense(1)(inputs)])
  directory = str(tmp_path / "export")
  export.export_model(network, directory, is_chief=True, metadata={
      "feature_scale": 1.0, "input_shape": [4],
      **export.loss_metadata(
          [keras.losses.SparseCategoricalCrossentropy(from_logits=True),
           keras.losses.BinaryCrossentropy(from_logits=True)])})
  features = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
  np.save(tmp_path / "x.npy", features)
  result = run_predict([f"--export_dir={directory}",
                        f"--input={tmp_path / 'x.npy'}",
                        f"--output={tmp_path / 'p.npz'}", "--classes"])
  assert result.returncode == 0, result.stderr[-2000:]
  logits = [output.numpy() for output in network(features)]
  with np.load(tmp_path / "p.npz") as predicted:
    assert sorted(predicted.files) == ["output_0", "output_1"]
    np.testing.assert_allclose(predicted["output_0"], softmax(logits[0]),
                               atol=1e-6)
    np.testing.assert_allclose(predicted["output_1"], sigmoid(logits[1]),
                               atol=1e-6)
  with np.load(tmp_path / "p.classes.npz") as classes:
    np.testing.assert_array_equal(classes["output_0"],
                                  logits[0].argmax(axis=1))


@pytest.mark.parametrize("make_input,message", [
    (lambda d: np.save(d / "x.npy", np.zeros((3, 7))),
     "has examples of shape (7,); the model takes (8, 8, 1)"),
    (lambda d: (d / "x.csv").write_text("1,2,3\n1,2,oops\n"),
     "x.csv line 2 does not hold 3 numbers"),
    (lambda d: (d / "x.csv").write_text("a,b\n"), "a header row but no"),
    (lambda d: (d / "x.npy").write_text("garbage"), "not a readable .npy"),
    (lambda d: np.savez(d / "x.npz", a=np.zeros((2, 64)), b=np.zeros((2, 64))),
     "holds 2 arrays (a, b)"),
    (lambda d: (d / "x.txt").write_text("1"), "the input must end in"),
])
def test_bad_prediction_input_is_one_sentence(tmp_path, make_input, message):
  make_input(tmp_path)
  path = next(p for p in tmp_path.iterdir() if p.name.startswith("x."))
  with pytest.raises(errors.DataError, match=".*") as raised:
    files.load_features(str(path), (8, 8, 1))
  assert message in str(raised.value)


@pytest.mark.slow
def test_bad_export_dir_exits_2_without_output(tmp_path):
  np.save(tmp_path / "x.npy", np.zeros((2, 64)))
  result = run_predict([f"--export_dir={tmp_path / 'missing'}",
                        f"--input={tmp_path / 'x.npy'}",
                        f"--output={tmp_path / 'p.npy'}"])
  assert result.returncode == 2
  assert "is not an export of this harness" in result.stderr
  assert "Traceback" not in result.stderr
  assert not (tmp_path / "p.npy").exists()
