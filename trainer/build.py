"""Builds the model and its optimizer inside a strategy's scope."""

import keras
import tensorflow as tf

from trainer import config as config_lib
from trainer import model as model_lib
from trainer import models
from trainer import optimizers


def build_model(config: config_lib.TrainConfig,
                strategy: tf.distribute.Strategy, *,
                input_shape: tuple[int, ...], num_classes: int,
                model_class: type[model_lib.Model] = model_lib.Model
                ) -> model_lib.Model:
  """Returns a built `Model` with a built optimizer attached.

  Variables, metrics and optimizer slots are all created in
  `strategy.scope()`, and the optimizer is built before the first
  `tf.function` call (Keras 3 fails inside a distributed step otherwise).

  Args:
    config: Names the network and optimizer.
    strategy: The strategy whose scope owns the variables.
    input_shape: Shape of one example.
    num_classes: Number of classes.
    model_class: A `Model` subclass (e.g. with a custom `train_step`); it is
      called as `model_class(network, metrics=[...])`.

  Raises:
    ValueError: If the model or optimizer name is unknown.
  """
  with strategy.scope():
    network = models.build_network(config.model, input_shape, num_classes,
                                   l2=config.l2)
    model = model_class(network, metrics=[
        keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    model(tf.zeros((1, *input_shape)), training=False)
    optimizer = optimizers.build_optimizer(
        config.optimizer, config.learning_rate, momentum=config.momentum)
    optimizer.build(model.trainable_variables)
    model.optimizer = optimizer
  return model
