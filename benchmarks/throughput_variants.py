"""The three training loops `benchmarks.throughput` compares, on identical data.

Each setup builds the same network under the same strategy and exposes
`first_step()`, `run()` (one compiled call of `steps_per_call` steps) and
optionally `run_fixed()` (the same fed from one in-memory batch).
"""

import dataclasses
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from datasets import catalogue
from launch.distributed import strategy as strategy_lib
from trainer import build
from trainer import config as config_lib
from trainer import models
from trainer import runner as runner_lib


@dataclasses.dataclass
class Setup:
  first_step: Callable[[], None]
  run: Callable[[], None]
  run_fixed: Callable[[], None] | None = None


def _strategy(num_replicas: int) -> tf.distribute.Strategy:
  strategy_lib.configure_cpu_devices(num_replicas)
  if num_replicas == 1:
    return tf.distribute.OneDeviceStrategy("/cpu:0")
  return tf.distribute.MirroredStrategy(
      [f"/cpu:{index}" for index in range(num_replicas)])


def _data():
  # 60,000 uint8 28x28x1 images, 10 classes (scaled by 1/255).
  return catalogue.make_synthetic()[0]


def harness(*, model_name, num_replicas, global_batch_size, steps_per_call,
            jit_compile, mixed_precision) -> Setup:
  strategy = _strategy(num_replicas)
  source = _data()
  config = config_lib.TrainConfig(model=model_name, jit_compile=jit_compile,
                                  mixed_precision=mixed_precision)
  model = build.build_model(config, strategy, input_shape=source.input_shape,
                            num_classes=source.num_classes)

  def make_runner(dataset_fn):
    return runner_lib.Runner(strategy=strategy, model=model,
                             train_dataset_fn=dataset_fn,
                             jit_compile=jit_compile)

  runner = make_runner(source.train_dataset_fn(
      global_batch_size=global_batch_size, seed=0))
  per_replica = global_batch_size // num_replicas
  batch = (tf.random.uniform((per_replica, *source.input_shape)),
           tf.zeros((per_replica,), tf.int32))
  fixed = make_runner(
      lambda context: tf.data.Dataset.from_tensors(batch).repeat())
  return Setup(first_step=lambda: runner.train(1),
               run=lambda: runner.train(steps_per_call),
               run_fixed=lambda: fixed.train(steps_per_call))


def _baseline(model_name, num_replicas, global_batch_size):
  """Strategy, plain tf.data pipeline and bare Keras network of a baseline."""
  strategy = _strategy(num_replicas)
  source = _data()
  with strategy.scope():
    network = models.build_network(
        model_name, source.input_shape,
        models.NetworkSpec(units=source.num_classes))
  return strategy, _plain_dataset(source, global_batch_size), network


def _plain_dataset(source, global_batch_size):
  features = source.data.features.astype(np.float32) * source.feature_scale
  return (tf.data.Dataset.from_tensor_slices((features, source.data.labels))
          .shuffle(10_000, seed=0).repeat().batch(global_batch_size,
                                                  drop_remainder=True)
          .prefetch(tf.data.AUTOTUNE))


def _plain_step(strategy, network):
  """The per-replica step of the hand-written loops (Adam, mean loss)."""
  loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                       reduction=None)
  with strategy.scope():
    optimizer = keras.optimizers.Adam(3e-3)
    optimizer.build(network.trainable_variables)

  def step(x, y):
    with tf.GradientTape() as tape:
      loss = tf.nn.compute_average_loss(loss_fn(y, network(x, training=True)))
    gradients = tape.gradient(loss, network.trainable_variables)
    optimizer.apply_gradients(zip(gradients, network.trainable_variables))

  return step


def fused(*, model_name, num_replicas, global_batch_size, steps_per_call,
          jit_compile, mixed_precision) -> Setup:
  """The hand-written floor: a fused tf.range loop over strategy.run."""
  del jit_compile, mixed_precision
  strategy, dataset, network = _baseline(model_name, num_replicas,
                                         global_batch_size)
  step = _plain_step(strategy, network)
  iterator = iter(strategy.experimental_distribute_dataset(dataset))

  @tf.function
  def loop(num_steps):
    for _ in tf.range(num_steps):
      strategy.run(step, args=next(iterator))

  return Setup(first_step=lambda: loop(tf.constant(1)),
               run=lambda: loop(tf.constant(steps_per_call)))


def orbit_trainer(*, model_name, num_replicas, global_batch_size,
                  steps_per_call, jit_compile, mixed_precision) -> Setup:
  """Orbit's `StandardTrainer` (TF Model Garden's loop library): a
  `tf.while_loop` of `steps_per_call` steps per `train()` call.

  Needs `pip install --no-deps tf-models-no-deps==2.19.0 tf-keras==2.21.0`
  (Orbit imports tf_keras); the benchmark skips this variant without it.
  """
  del jit_compile, mixed_precision
  import orbit  # pylint: disable=import-outside-toplevel
  strategy, dataset, network = _baseline(model_name, num_replicas,
                                         global_batch_size)
  step = _plain_step(strategy, network)

  class Trainer(orbit.StandardTrainer):

    def __init__(self):
      super().__init__(
          train_dataset=strategy.experimental_distribute_dataset(dataset),
          options=orbit.StandardTrainerOptions(use_tf_while_loop=True))

    def train_step(self, iterator):
      strategy.run(step, args=next(iterator))

  trainer = Trainer()
  return Setup(first_step=lambda: trainer.train(tf.constant(1)),
               run=lambda: trainer.train(tf.constant(steps_per_call)))


def keras_fit(*, model_name, num_replicas, global_batch_size, steps_per_call,
              jit_compile, mixed_precision) -> Setup:
  """Keras 3 `fit` with default settings (steps_per_execution=1)."""
  del jit_compile, mixed_precision
  strategy, dataset, network = _baseline(model_name, num_replicas,
                                         global_batch_size)
  with strategy.scope():
    network.compile(optimizer=keras.optimizers.Adam(3e-3),
                    loss=keras.losses.SparseCategoricalCrossentropy(
                        from_logits=True), metrics=["accuracy"])

  def fit(steps):
    network.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)

  return Setup(first_step=lambda: fit(1), run=lambda: fit(steps_per_call))


SETUPS = {"harness": harness, "fused": fused, "orbit": orbit_trainer,
          "keras_fit": keras_fit}

