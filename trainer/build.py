"""Builds the model and its optimizer inside a strategy's scope."""

import keras
import tensorflow as tf

from trainer import config as config_lib
from trainer import model as model_lib
from trainer import models
from trainer import multi_output
from trainer import objectives
from trainer import optimizers


def example_batch(input_shape):
  """A batch of one zero example: a tensor, or a dict for named inputs."""
  if isinstance(input_shape, dict):
    return {name: tf.zeros((1, *shape)) for name, shape in input_shape.items()}
  return tf.zeros((1, *input_shape))


def build_model(config: config_lib.TrainConfig,
                strategy: tf.distribute.Strategy, *,
                input_shape: tuple[int, ...] | dict, num_classes: int,
                model_class: type[model_lib.Model] = model_lib.Model,
                standardization=None) -> model_lib.Model:
  """Returns a built `Model` with a built optimizer attached.

  Variables, metrics and optimizer slots are all created in
  `strategy.scope()`, and the optimizer is built before the first
  `tf.function` call (Keras 3 fails inside a distributed step otherwise).
  Under `mixed_float16` the optimizer is wrapped in a dynamic
  `LossScaleOptimizer`.

  Args:
    config: Names the network, loss, metrics and optimizer.
    strategy: The strategy whose scope owns the variables.
    input_shape: Shape of one example (a dict of shapes for named inputs).
    num_classes: Number of classes (a dict per output for multi-output
      models).
    model_class: A `Model` subclass (e.g. with a custom `train_step`); it is
      called as `model_class(network, loss=..., metrics=[...], ...)`.
    standardization: None, or (mean, variance) of the flat training
      features: a Normalization layer in front of the network standardizes
      tabular data (it is part of the export).

  Raises:
    ValueError: If a name in the config is unknown.
  """
  spec = _network_spec(config, num_classes)
  with strategy.scope():
    network, loss, metrics = models.build_parts(
        config.model, input_shape, spec, dtype_policy=config.mixed_precision)
    if standardization is not None:
      network = _standardized(network, input_shape, standardization)
    if metrics is not None:  # A user builder's own; names are resolved.
      metrics = [objectives.build_metrics(
          [metric], loss=config.loss, from_logits=config.from_logits,
          num_classes=num_classes)[0] if isinstance(metric, str) else metric
                 for metric in metrics]
    model = model_class(
        network, loss=loss or configured_loss(config, num_classes),
        metrics=(configured_metrics(config, num_classes) if metrics is None
                 else metrics),
        clip_norm=config.clip_norm, accumulate_steps=config.accumulate_steps)
    model(example_batch(input_shape), training=False)
    attach_optimizer(model, config)
  return model


def _standardized(network: keras.Model, input_shape, standardization):
  """`network` behind a Normalization layer with fixed statistics."""
  mean, variance = standardization
  inputs = keras.Input(shape=input_shape, name="features")
  normalized = keras.layers.Normalization(
      mean=mean, variance=variance, name="standardize")(inputs)
  return keras.Model(inputs, network(normalized), name=network.name)


def attach_optimizer(model: keras.Model, config: config_lib.TrainConfig):
  """Gives `model` the configured optimizer (unless it has one), built.

  Call it inside the strategy's scope, after the model's variables exist.
  """
  if getattr(model, "optimizer", None) is None:
    optimizer = optimizers.build_optimizer(
        config.optimizer, optimizers.build_learning_rate(config),
        momentum=config.momentum, weight_decay=config.weight_decay)
    if config.mixed_precision == "mixed_float16":
      optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.optimizer = optimizer
  model.optimizer.build(model.trainable_variables)
  optimizers.prepare_for_replicas(
      model.optimizer, clip_norm=getattr(model, "clip_norm", 0.0))


def _network_spec(config: config_lib.TrainConfig,
                  num_classes) -> models.NetworkSpec:
  common = dict(l2=config.l2, dropout=config.dropout,
                sync_batchnorm=config.sync_batchnorm)
  if config.output_losses:
    return models.NetworkSpec(outputs=tuple(
        (name, objectives.output_units(loss, num_classes[name]),
         objectives.output_activation(loss, config.from_logits))
        for name, loss in config.output_losses), **common)
  return models.NetworkSpec(
      units=objectives.output_units(config.loss, num_classes),
      activation=objectives.output_activation(config.loss,
                                              config.from_logits), **common)


def configured_loss(config: config_lib.TrainConfig, num_classes):
  if config.output_losses:
    return multi_output.build_loss(config.output_losses, config.loss_weights,
                                   from_logits=config.from_logits,
                                   num_classes=num_classes)
  return objectives.build_loss(config.loss, from_logits=config.from_logits,
                               num_classes=num_classes)


def configured_metrics(config: config_lib.TrainConfig, num_classes):
  if config.output_losses:
    return multi_output.build_metrics(config.metrics, config.output_losses,
                                      from_logits=config.from_logits,
                                      num_classes=num_classes)
  return objectives.build_metrics(
      config.metrics, loss=config.loss, from_logits=config.from_logits,
      num_classes=num_classes)
