"""mixed_float16, 2 replicas: an overflow on ONE replica skips the step on all.

Keras's LossScaleOptimizer looks at replica 0's gradients only; these tests
force an overflow on replica 1 alone (a batch whose replica-1 half is huge)
and check what a user would see: weights finite and equal on both replicas,
the step skipped (`iterations` unchanged) and the loss scale halved, as
Keras does on one device; normal steps still train like float32.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import make_strategy
from trainer import build
from trainer import config as config_lib
from trainer import model as model_lib
from trainer import step_fns
from trainer import user_models

GLOBAL_BATCH = 8
FEATURES = 6
HUGE = 1e6  # Beyond float16's range (65,504).


class InfOnHugeInputs(model_lib.Model):
  """The harness's step, with +inf added to a replica's gradients when its
  batch holds a huge value: a pure-inf overflow (no NaN), the case where
  clipping by the all-reduced norm once turned inf into inf x 0 = NaN."""

  def train_step(self, data):
    x, y = data
    overflow = tf.where(tf.reduce_max(x) > 1e5, float("inf"), 0.0)
    with tf.GradientTape() as tape:
      y_pred = self(tf.minimum(x, 1.0), training=True)
      per_example_loss = self.loss_fn(y, y_pred)
      loss = self.compute_average_loss(per_example_loss)
      scaled_loss = self.optimizer.scale_loss(loss)
    gradients = tape.gradient(scaled_loss, self.trainable_variables)
    self.apply_gradients([g + overflow for g in gradients])
    return self.update_metrics(y, y_pred, per_example_loss)


def batches(*overflowing: bool, leave_out_overflows: bool = False
            ) -> tf.data.Dataset:
  """One global batch per step; in an overflowing one, replica 1's half
  (the second half: experimental_distribute_dataset splits in order) is
  huge. The other batches are the same with `leave_out_overflows`."""
  rng = np.random.default_rng(0)
  xs, ys = [], []
  for overflow in overflowing:
    x = rng.uniform(0.0, 1.0, (GLOBAL_BATCH, FEATURES)).astype(np.float32)
    y = rng.integers(0, 3, GLOBAL_BATCH)
    if overflow and leave_out_overflows:
      continue
    if overflow:
      x[GLOBAL_BATCH // 2:] = HUGE
    xs.append(x)
    ys.append(y)
  return tf.data.Dataset.from_tensor_slices(
      (np.concatenate(xs), np.concatenate(ys))).batch(GLOBAL_BATCH)


class Stepper:
  """A model on `replicas` CPUs and its compiled one-step loop."""

  def __init__(self, model_fn, replicas: int, dataset: tf.data.Dataset):
    self.strategy = make_strategy(replicas)
    keras.utils.set_random_seed(1)
    self.model = model_fn(self.strategy)
    self.loop = step_fns.create_train_loop_fn(self.strategy, self.model)
    self.iterator = iter(self.strategy.experimental_distribute_dataset(
        dataset))

  def step(self) -> None:
    self.loop(self.iterator, tf.constant(1))

  def per_replica(self, variable) -> list[np.ndarray]:
    """The variable's value on each replica."""
    return [np.array(value) for value in
            self.strategy.experimental_local_results(
                getattr(variable, "value", variable))]

  def weights(self) -> list[list[np.ndarray]]:
    """Per weight, its value on each replica."""
    return [self.per_replica(w) for w in self.model.trainable_weights]

  def optimizer_state(self) -> tuple[int, float]:
    """The optimizer's `iterations` and loss scale (replica 0's)."""
    optimizer = self.model.optimizer
    return (int(self.per_replica(optimizer.iterations)[0]),
            float(self.per_replica(optimizer.dynamic_scale)[0]))


def harness_model(policy: str, clip_norm: float):
  config = config_lib.TrainConfig(
      model="mlp", mixed_precision=policy, clip_norm=clip_norm,
      optimizer="sgd", momentum=0.0, learning_rate=0.5, dropout=0.0)
  return lambda strategy: build.build_model(
      config, strategy, input_shape=(FEATURES,), num_classes=3,
      model_class=InfOnHugeInputs)


def compiled_model(strategy):
  """A user's compiled model: Keras's default train_step and the
  LossScaleOptimizer compile() adds under mixed_float16."""
  def model_fn():
    model = keras.Sequential([
        keras.Input((FEATURES,)), keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(3, dtype="float32")])
    model.compile(optimizer=keras.optimizers.SGD(0.5),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
    return model
  spec = (tf.TensorSpec([None, FEATURES], tf.float32),
          tf.TensorSpec([None], tf.int64))
  return user_models.build_user_model(
      model_fn, strategy, num_classes=3, element_spec=spec,
      config=config_lib.TrainConfig(mixed_precision="mixed_float16"))


def assert_skipped_on_all_replicas(stepper: Stepper, before, scale_before):
  after = stepper.weights()
  for replicas_before, replicas_after in zip(before, after):
    for value in replicas_after:
      assert np.isfinite(value).all()
      np.testing.assert_array_equal(value, replicas_after[0])
    np.testing.assert_array_equal(replicas_after[0], replicas_before[0])
  assert stepper.optimizer_state() == (1, scale_before / 2)


@pytest.mark.parametrize("clip_norm", [0.0, 0.5])
def test_harness_step_skips_an_overflow_of_one_replica(clip_norm):
  stepper = Stepper(harness_model("mixed_float16", clip_norm), 2,
                    batches(False, True, False))
  stepper.step()  # A normal step.
  before = stepper.weights()
  _, scale = stepper.optimizer_state()
  stepper.step()  # Replica 1 overflows.
  assert_skipped_on_all_replicas(stepper, before, scale)
  stepper.step()  # Training goes on.
  assert stepper.optimizer_state() == (2, scale / 2)

  # The two normal steps trained as float32 on one device (same batches).
  normal_batches = batches(False, True, False, leave_out_overflows=True)
  reference = Stepper(harness_model("float32", clip_norm), 1, normal_batches)
  reference.step()
  reference.step()
  for mixed, single in zip(stepper.weights(), reference.weights()):
    np.testing.assert_allclose(mixed[0], single[0], atol=2e-3)
  if clip_norm:  # The clip was active: a step is far smaller without it.
    unclipped = Stepper(harness_model("float32", 0.0), 1, normal_batches)
    unclipped.step()
    unclipped.step()
    assert max(np.abs(a[0] - b[0]).max() for a, b in zip(
        unclipped.weights(), reference.weights())) > 1e-2


def test_compiled_models_default_step_skips_an_overflow_of_one_replica():
  stepper = Stepper(compiled_model, 2, batches(False, True, False))
  assert isinstance(stepper.model.optimizer,
                    keras.optimizers.LossScaleOptimizer)
  stepper.step()
  before = stepper.weights()
  _, scale = stepper.optimizer_state()
  stepper.step()  # Replica 1's inputs overflow float16.
  assert_skipped_on_all_replicas(stepper, before, scale)
  stepper.step()
  assert stepper.optimizer_state() == (2, scale / 2)
  assert all(np.isfinite(w[0]).all() for w in stepper.weights())


def all_reduce_sizes(function, *args) -> list[int]:
  """Elements of each collective all-reduce in a traced function (and in
  the functions it calls: conds, the optimizer's update)."""
  graph_def = function.get_concrete_function(*args).graph.as_graph_def(
      add_shapes=True)
  nodes = list(graph_def.node)
  for library_function in graph_def.library.function:
    nodes += library_function.node_def
  sizes = []
  for node in nodes:
    if node.op in ("CollectiveReduceV2", "CollectiveReduceV3",
                   "CollectiveReduce", "NcclAllReduce"):
      dims = node.attr["_output_shapes"].list.shape[0].dim
      sizes.append(int(np.prod([dim.size for dim in dims])))
  return sizes


@pytest.mark.parametrize("policy", ["float32", "mixed_float16"])
@pytest.mark.parametrize("clip_norm", [0.0, 0.5])
def test_one_all_reduce_of_the_gradients_per_step(policy, clip_norm):
  stepper = Stepper(harness_model(policy, clip_norm), 2, batches(False))
  step = step_fns.create_train_step_fn(stepper.strategy, stepper.model)
  sizes = all_reduce_sizes(step, stepper.iterator)
  weights = sum(w.numpy().size for w in stepper.model.trainable_weights)
  # One all-reduce is one op per replica; the gradients go in one pack.
  assert [size for size in sizes if size > 1] == [weights, weights]
  # Under loss scaling, one more all-reduce: a scalar, the overflow vote.
  assert len(sizes) == (4 if policy == "mixed_float16" else 2)
