"""Compiled loops: K training steps, or a whole evaluation, per call.

Each function is one `tf.function`; `num_steps` is a tensor so a shorter loop
(to land on an eval or checkpoint boundary) does not retrace. Nothing here
touches the host inside the loop.
"""

from collections.abc import Callable, Iterator

import tensorflow as tf

from trainer import model as model_lib


def create_train_loop_fn(
    strategy: tf.distribute.Strategy, model: model_lib.Model, *,
    jit_compile: bool = False,
    train_step: Callable | None = None) -> Callable[[Iterator, tf.Tensor],
                                                    None]:
  """Returns `train_loop(iterator, num_steps)` running `model.train_step`.

  Args:
    strategy: The strategy whose replicas run the steps.
    model: The model; its optimizer must be built already.
    jit_compile: Compile the per-replica step with XLA.
    train_step: The per-replica step, if not `model.train_step` (e.g. the
      latter wrapped by a `loss_tracking.LossWatch`).
  """
  train_step = train_step or model.train_step
  if jit_compile:
    train_step = tf.function(train_step, jit_compile=True)

  @tf.function
  def train_loop(iterator, num_steps):
    for _ in tf.range(num_steps):
      strategy.run(train_step, args=(next(iterator),))

  return train_loop


def create_train_step_fn(
    strategy: tf.distribute.Strategy, model: model_lib.Model, *,
    jit_compile: bool = False,
    train_step: Callable | None = None) -> Callable[[Iterator], None]:
  """Returns `train_one(iterator)`: one step, no loop (for the profiler).

  The profiler's step view needs one marked call per step: inside a
  `tf.while_loop` it counts the iterations, which carry no marker.
  `train_step` is as in `create_train_loop_fn`.
  """
  train_step = train_step or model.train_step
  if jit_compile:
    train_step = tf.function(train_step, jit_compile=True)

  @tf.function
  def train_one(iterator):
    strategy.run(train_step, args=(next(iterator),))

  return train_one


def create_eval_loop_fn(
    strategy: tf.distribute.Strategy, model: model_lib.Model, *,
    test_step: Callable | None = None) -> Callable[[Iterator, tf.Tensor],
                                                   tf.Tensor]:
  """Returns `eval_loop(iterator, num_steps)` -> number of real examples.

  With padded batches `(x, y, sample_weight)` the count is the sum of the
  weights (padding weighs 0); unpadded batches `(x, y)` count their rows.
  `test_step` replaces `model.test_step` (e.g. wrapped by a `LossWatch`).
  """
  test_step = test_step or model.test_step

  def eval_step(data):
    test_step(data)
    if len(data) == 3:
      return tf.reduce_sum(data[2])
    rows = tf.shape(tf.nest.flatten(data[0])[0])[0]
    return tf.cast(rows, tf.float32)

  @tf.function
  def eval_loop(iterator, num_steps):
    examples = tf.constant(0.0)
    for _ in tf.range(num_steps):
      per_replica = strategy.run(eval_step, args=(next(iterator),))
      examples += strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica,
                                  axis=None)
    return examples

  return eval_loop


def create_read_metrics_fn(model: model_lib.Model) -> Callable[[], dict]:
  """Returns a function giving `{name: cross-replica result}` of the metrics.

  Keras's `get_metrics_result` flattens compile()'s metrics (a dict) too.
  Call it in cross-replica context on every worker at the same point: reading
  a sync-on-read metric is a collective under MultiWorkerMirroredStrategy.
  """

  @tf.function
  def read_metrics():
    return model.get_metrics_result()

  return read_metrics


def create_read_fn(read: Callable[[], tf.Tensor]) -> Callable[[], tf.Tensor]:
  """Returns `read` as a `tf.function`, e.g. for a metric's cross-replica
  result (a collective under MultiWorkerMirroredStrategy: call it on every
  worker at the same point)."""

  @tf.function
  def read_fn():
    return read()

  return read_fn


def create_any_replica_fn(
    strategy: tf.distribute.Strategy) -> Callable[[tf.Tensor], tf.Tensor]:
  """Returns `any_replica(flag)`: the OR of a boolean over all workers."""

  @tf.function
  def any_replica(flag):
    per_replica = strategy.run(lambda: tf.cast(flag, tf.int32))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica,
                           axis=None) > 0

  return any_replica
