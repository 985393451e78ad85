"""Built-in networks from the user's notes, and the model registry.

Every builder takes the output layout (`units`, `activation`) so one network
serves classification with logits or probabilities, binary classification
and regression. The last layer always computes in float32, so under a mixed
precision policy the outputs (and the loss) stay float32.
"""

from collections.abc import Callable
import dataclasses
import importlib
import math

import keras

from trainer.config import MODEL_NAMES


@dataclasses.dataclass(frozen=True, kw_only=True)
class NetworkSpec:
  """What a builder needs besides the input shape.

  Attributes:
    units: Units of the output layer.
    activation: Output activation (None: logits or regression values).
    l2: L2 factor of the kernels (0: none).
    dropout: Dropout rate where the network has dropout.
    sync_batchnorm: Normalize with statistics of the global batch.
    outputs: For a multi-output network: (name, units, activation) of each
      output; `output_layers()` builds them.
  """

  units: int = 0
  activation: str | None = None
  l2: float = 0.0
  dropout: float = 0.25
  sync_batchnorm: bool = False
  outputs: tuple[tuple[str, int, str | None], ...] = ()

  @property
  def regularizer(self):
    return keras.regularizers.L2(self.l2) if self.l2 else None

  def output_layer(self) -> keras.layers.Layer:
    return keras.layers.Dense(self.units, activation=self.activation,
                              kernel_regularizer=self.regularizer,
                              dtype="float32", name="output")

  def output_layers(self) -> dict[str, keras.layers.Layer]:
    """One float32 Dense layer per named output."""
    return {name: keras.layers.Dense(units, activation=activation,
                                     kernel_regularizer=self.regularizer,
                                     dtype="float32", name=name)
            for name, units, activation in self.outputs}


def build_mlp(input_shape: tuple[int, ...], spec: NetworkSpec, *,
              hidden_units: int = 64) -> keras.Model:
  """The MNIST MLP of the notes: Flatten -> Dense(64, relu) -> Dense(units).

  For 28x28 inputs and 10 classes this is the 784-64-10 network.
  """
  return keras.Sequential([
      keras.Input(shape=input_shape),
      keras.layers.Flatten(),
      keras.layers.Dense(hidden_units, activation="relu",
                         kernel_regularizer=spec.regularizer),
      spec.output_layer(),
  ], name="mlp")


def build_cnn(input_shape: tuple[int, ...], spec: NetworkSpec) -> keras.Model:
  """A small CNN: Conv2D, BatchNormalization, MaxPooling2D, Dropout, Dense.

  The pooling is skipped on inputs too small for it (8x8 digits pool once).
  """
  layers = [keras.Input(shape=input_shape)]
  size = min(input_shape[0], input_shape[1])
  for filters in (32, 64):
    layers += [
        keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                            kernel_regularizer=spec.regularizer),
        # Momentum 0.9, not 0.99: moving statistics usable after ~100 steps.
        keras.layers.BatchNormalization(momentum=0.9,
                                        synchronized=spec.sync_batchnorm),
        keras.layers.Activation("relu"),
    ]
    if size >= 8:
      layers.append(keras.layers.MaxPooling2D(2))
      size //= 2
  layers += [
      keras.layers.Flatten(),
      keras.layers.Dropout(spec.dropout),
      keras.layers.Dense(128, activation="relu",
                         kernel_regularizer=spec.regularizer),
      keras.layers.Dropout(spec.dropout),
      spec.output_layer(),
  ]
  return keras.Sequential(layers, name="cnn")


def build_functional(input_shape: dict[str, tuple[int, ...]],
                     spec: NetworkSpec) -> keras.Model:
  """The notes' two-input model: Concatenate -> Dense(128) -> Dropout -> out.

  With the loss binary_crossentropy and `from_logits=False` the output is
  the notes' Dense(1, sigmoid). Needs a dataset with two named inputs
  (digits_halves).
  """
  if not isinstance(input_shape, dict) or len(input_shape) != 2:
    raise ValueError("the functional network needs a dataset with two named"
                     " inputs, such as digits_halves.")
  inputs = {name: keras.Input(shape=shape, name=name)
            for name, shape in input_shape.items()}
  flat = [keras.layers.Flatten()(tensor) for tensor in inputs.values()]
  x = keras.layers.Concatenate()(flat)
  x = keras.layers.Dense(128, activation="relu",
                         kernel_regularizer=spec.regularizer)(x)
  x = keras.layers.Dropout(spec.dropout)(x)
  return keras.Model(inputs=inputs, outputs=spec.output_layer()(x),
                     name="functional")


@keras.saving.register_keras_serializable(package="tfharness")
class SubclassedNet(keras.Model):
  """The notes' subclassed model: Dense(64) -> Dropout (training only) -> out.

  The `if training:` branch is Python: each `tf.function` trace sees a
  constant, so evaluation and export never contain the dropout.
  """

  def __init__(self, units: int, activation: str | None = None,
               dropout: float = 0.2, l2: float = 0.0, **kwargs):
    super().__init__(**kwargs)
    self._arguments = dict(units=units, activation=activation,
                           dropout=dropout, l2=l2)
    spec = NetworkSpec(units=units, activation=activation, l2=l2)
    self.flatten = keras.layers.Flatten()
    self.dense1 = keras.layers.Dense(64, activation="relu",
                                     kernel_regularizer=spec.regularizer)
    self.dropout = keras.layers.Dropout(dropout)
    self.dense2 = spec.output_layer()

  def build(self, input_shape):
    """Builds the layers for inputs [batch, ...] (as the notes' build())."""
    features = math.prod(input_shape[1:])
    self.dense1.build((None, features))
    self.dense2.build((None, self.dense1.units))
    self.built = True

  def call(self, inputs, training=False):
    x = self.dense1(self.flatten(inputs))
    if training:  # Dropout only while training, as in the notes.
      x = self.dropout(x, training=True)
    return self.dense2(x)

  def get_config(self):
    return {**super().get_config(), **self._arguments}


def build_subclassed(input_shape: tuple[int, ...],
                     spec: NetworkSpec) -> keras.Model:
  """A built `SubclassedNet` (the notes call `model.build` the same way)."""
  network = SubclassedNet(spec.units, spec.activation, dropout=spec.dropout,
                          l2=spec.l2, name="subclassed")
  network.build((None, *input_shape))
  return network


def build_rnn(input_shape: tuple[int, ...], spec: NetworkSpec, *,
              units: int = 64) -> keras.Model:
  """A small recurrent model: LSTM(64) over time steps -> Dense(units).

  Sequences [T, F] are read as they are; images [H, W, C] row by row, as
  H time steps of W * C features.
  """
  if len(input_shape) not in (2, 3):
    raise ValueError(f"the rnn network needs sequences [steps, features] or"
                     f" images [rows, columns, channels], not {input_shape}.")
  layers = [keras.Input(shape=input_shape)]
  if len(input_shape) == 3:
    layers.append(keras.layers.Reshape(
        (input_shape[0], input_shape[1] * input_shape[2])))
  layers += [keras.layers.LSTM(units, kernel_regularizer=spec.regularizer),
             spec.output_layer()]
  return keras.Sequential(layers, name="rnn")


def build_two_head(input_shape: tuple[int, ...],
                   spec: NetworkSpec) -> keras.Model:
  """A shared trunk (Flatten -> Dense(64)) with one head per named output.

  For multi-output datasets such as digits_two_targets, with a loss per
  output (`output_losses`, e.g. digit:sparse_categorical_crossentropy).
  """
  if not spec.outputs:
    raise ValueError("the two_head network needs one loss per output, e.g."
                     " digit:sparse_categorical_crossentropy,"
                     "large:binary_crossentropy.")
  inputs = keras.Input(shape=input_shape)
  x = keras.layers.Flatten()(inputs)
  x = keras.layers.Dense(64, activation="relu",
                         kernel_regularizer=spec.regularizer)(x)
  outputs = {name: layer(x) for name, layer in spec.output_layers().items()}
  return keras.Model(inputs, outputs, name="two_head")


_BUILDERS: dict[str, Callable[..., keras.Model]] = {
    "mlp": build_mlp,
    "cnn": build_cnn,
    "functional": build_functional,
    "subclassed": build_subclassed,
    "rnn": build_rnn,
    "two_head": build_two_head,
}


def resolve_builder(name: str, *,
                    label: str | None = None) -> Callable[..., keras.Model]:
  """A built-in builder, or a user's `package.module:function`.

  A user builder has the built-ins' signature, `fn(input_shape, spec)`,
  and returns a `keras.Model` whose output follows `spec` (units and
  activation), e.g. ending in `spec.output_layer()`; or, with its own loss
  and metrics, a tuple (see `build_parts`).

  Args:
    name: A built-in name or `package.module:function`.
    label: How messages name the caller's setting (default: "model NAME").

  Raises:
    ValueError: If the name is unknown or cannot be imported.
  """
  if name in _BUILDERS:
    return _BUILDERS[name]
  return import_function(name, kind="model", label=label,
                         choices=f"one of {', '.join(MODEL_NAMES)} or")


def import_function(name: str, *, kind: str, choices: str = "a built-in"
                    " name or", label: str | None = None) -> Callable:
  """The function `package.module:function` that `name` names.

  Args:
    name: `package.module:function`.
    kind: What it builds, for messages ("model", "dataset").
    choices: The alternatives a message offers.
    label: How messages name the caller's setting (default: "KIND NAME";
      a command line passes its flag).

  Raises:
    ValueError: One sentence if it cannot be imported or is not callable.
  """
  module_name, _, function_name = name.partition(":")
  if not module_name or not function_name:
    raise ValueError(f"unknown {kind} {name!r}; choose {choices}"
                     " package.module:function.")
  label = label or f"{kind} {name}"
  try:
    function = getattr(importlib.import_module(module_name), function_name)
  except ImportError as error:
    raise ValueError(f"{label}: cannot import {module_name}"
                     f" ({error}).") from None
  except AttributeError:
    raise ValueError(f"{label}: {module_name} has no"
                     f" {function_name}.") from None
  if not callable(function):
    raise ValueError(f"{label}: {function_name} is not callable.")
  return function


def build_parts(name: str, input_shape, spec: NetworkSpec, *,
                dtype_policy: str = "float32"):
  """Builds `name` (see `resolve_builder`) under a dtype policy.

  A builder returns a `keras.Model`, or `(model, loss)` or `(model, loss,
  metrics)`: `loss(y, y_pred)` replaces the configured loss (a Keras `Loss`
  or a function returning one value per example) and `metrics` (Keras
  metrics, or names from `METRIC_NAMES`) replace the configured metrics.

  Returns:
    (network, loss or None, metrics or None).

  Raises:
    ValueError: If `name` does not resolve or builds something else.
  """
  builder = resolve_builder(name)
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy(dtype_policy)
  try:
    built = builder(input_shape, spec)
  finally:
    keras.config.set_dtype_policy(previous)
  parts = tuple(built) if isinstance(built, (tuple, list)) else (built,)
  if not 1 <= len(parts) <= 3 or not isinstance(parts[0], keras.Model):
    raise ValueError(f"{name} returned {type(built).__name__}, not a"
                     " keras.Model or (model, loss[, metrics]).")
  network, loss, metrics = (*parts, None, None)[:3]
  if isinstance(loss, keras.losses.Loss):
    loss = loss.call  # Per example: `Loss.__call__` would reduce.
  if loss is not None and not callable(loss):
    raise ValueError(f"{name} returned a loss that is not callable.")
  return network, loss, None if metrics is None else list(metrics)


def build_network(name: str, input_shape, spec: NetworkSpec, *,
                  dtype_policy: str = "float32") -> keras.Model:
  """The network of `build_parts`, without a builder's loss or metrics."""
  return build_parts(name, input_shape, spec, dtype_policy=dtype_policy)[0]
