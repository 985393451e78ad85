"""Built-in networks from the user's notes, and the model registry."""

from collections.abc import Callable

import keras

from trainer.config import MODEL_NAMES


def build_mlp(input_shape: tuple[int, ...], num_classes: int, *,
              hidden_units: int = 64,
              l2: float = 0.0) -> keras.Model:
  """The MNIST MLP of the notes: flatten -> Dense(64, relu) -> Dense(classes).

  For 28x28 inputs this is the 784-64-10 network. The output is logits.
  """
  regularizer = keras.regularizers.L2(l2) if l2 else None
  return keras.Sequential([
      keras.Input(shape=input_shape),
      keras.layers.Flatten(),
      keras.layers.Dense(hidden_units, activation="relu",
                         kernel_regularizer=regularizer),
      keras.layers.Dense(num_classes, kernel_regularizer=regularizer),
  ], name="mlp")


def build_cnn(input_shape: tuple[int, ...], num_classes: int, *,
              l2: float = 0.0) -> keras.Model:
  """A small CNN: Conv2D, BatchNormalization, MaxPooling2D, Dropout, Dense.

  The pooling is skipped on inputs too small for it (8x8 digits pool once).
  """
  regularizer = keras.regularizers.L2(l2) if l2 else None
  layers = [keras.Input(shape=input_shape)]
  size = min(input_shape[0], input_shape[1])
  for filters in (32, 64):
    layers += [
        keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                            kernel_regularizer=regularizer),
        # Momentum 0.9, not 0.99: moving statistics usable after ~100 steps.
        keras.layers.BatchNormalization(momentum=0.9),
        keras.layers.Activation("relu"),
    ]
    if size >= 8:
      layers.append(keras.layers.MaxPooling2D(2))
      size //= 2
  layers += [
      keras.layers.Flatten(),
      keras.layers.Dropout(0.25),
      keras.layers.Dense(128, activation="relu", kernel_regularizer=regularizer),
      keras.layers.Dropout(0.25),
      keras.layers.Dense(num_classes, kernel_regularizer=regularizer),
  ]
  return keras.Sequential(layers, name="cnn")


_BUILDERS: dict[str, Callable[..., keras.Model]] = {
    "mlp": build_mlp,
    "cnn": build_cnn,
}


def build_network(name: str, input_shape: tuple[int, ...], num_classes: int,
                  **kwargs) -> keras.Model:
  """Builds the built-in network `name`.

  Raises:
    ValueError: If `name` is not one of `MODEL_NAMES`.
  """
  if name not in _BUILDERS:
    raise ValueError(f"unknown model {name!r}; choose one of"
                     f" {', '.join(MODEL_NAMES)}.")
  return _BUILDERS[name](input_shape, num_classes, **kwargs)
