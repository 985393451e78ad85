"""The training loss a compiled model's own step logs, right on any replicas.

Keras's `compute_loss` returns the loss scaled for distribution: divided by
the number of replicas in sync, so that gradients summed over the replicas
are the global batch's. Keras's default `train_step` multiplies it back
before it updates the "loss" metric; a step written as Keras's guide writes
it (`loss = self.compute_loss(...)`, then `metric.update_state(loss)` for
the metric named "loss") logs it divided, under Keras's own `fit` too.

The harness goes beyond Keras here:

* `unscaled_loss(loss)` is the public way to log a loss in a step: the
  global-batch value of what `compute_loss` returned, on 1 replica, N
  replicas or N workers (it undoes exactly Keras's scaling).
* A `LossWatch` does that by itself for a `keras.metrics.Mean` of the model
  (the "loss" tracker, or your own) given `compute_loss`'s result as is, so
  the guide's step logs the global-batch loss unchanged; the guide's loop
  over `self.metrics` no longer feeds `(y, y_pred)` to compile()'s
  per-output loss means (which `compute_loss` updated already).
* After the first training loop, `LossWatch.check` compares the logged
  "loss" with what `compute_loss` returned (un-scaled) and says, in one
  sentence, if the step logs it divided by the replicas or never logs it,
  or (mixed_float16) applies gradients without `optimizer.scale_loss`.

The wrappers replace public methods on the instances (`compute_loss`,
`Mean.update_state`, the optimizer's `scale_loss` and `apply`), which
Keras calls through the instance (checked with Keras 3.15.1).
"""

import functools
import inspect
import threading

import keras
import tensorflow as tf

LOSS_METRIC = "loss"
_RELATIVE_TOLERANCE = 1e-3  # Far above float32 rounding of a mean loss.


def unscaled_loss(loss: tf.Tensor) -> tf.Tensor:
  """The global-batch value of a loss `compute_loss` returned in a step.

  Use it to log a loss you derived from `compute_loss`'s result (a sum of
  two, an own metric), e.g. `self.loss_tracker.update_state(
  unscaled_loss(loss))`. Differentiate the scaled `loss`, not this.

  Args:
    loss: A scalar that `keras.Model.compute_loss` returned, which Keras
      divided by the number of replicas in sync (under a strategy).

  Returns:
    `loss` times the number of replicas in sync (1 without a strategy).
  """
  # The same count Keras divided by (keras.losses: scale_loss_for_distribution).
  replicas = tf.distribute.get_strategy().num_replicas_in_sync
  if replicas == 1:
    return loss
  return loss * tf.cast(replicas, loss.dtype)


class _StepTrace:
  """What one trace of a step, in one replica, did with `compute_loss`."""

  def __init__(self, training: bool):
    self.training = training
    self.losses = []  # compute_loss's results, in call order.
    self.rows = None  # Examples in the batch of the first call.
    self.results = {}  # tensor.ref() of each result -> its batch rows.
    self.scaled_loss = False  # Whether optimizer.scale_loss was called.
    self.applied = False  # Whether the optimizer applied gradients.
    self.inside_compute_loss = 0  # Depth of compute_loss calls.
    self.updated_by_compute_loss = set()  # ids of Means it updated.


def _rows(signature: inspect.Signature, args, kwargs):
  """Examples in the batch `compute_loss` was called with, or None."""
  try:
    arguments = signature.bind_partial(*args, **kwargs).arguments
  except TypeError:  # An override's own signature; weigh steps equally.
    return None
  for name in ("y_pred", "y", "x"):
    tensors = [value for value in tf.nest.flatten(arguments.get(name))
               if isinstance(value, tf.Tensor)]
    if tensors and tensors[0].shape.rank:
      return tf.cast(tf.shape(tensors[0])[0], tf.float32)
  return None


class LossWatch:
  """Watches a compiled model's `compute_loss` and its loss metrics.

  Installs thin wrappers on the model (its `compute_loss`, the
  `update_state` of each plain `keras.metrics.Mean` of `model.metrics`, its
  optimizer's `scale_loss`); they act only inside the steps this watch
  wraps (`wrap_step`), so the model behaves as Keras's elsewhere.
  """

  def __init__(self, model: keras.Model, strategy: tf.distribute.Strategy):
    """Installs the wrappers; call before the steps are traced.

    Args:
      model: A compiled `keras.Model`.
      strategy: The strategy its steps run under (owns the watch's metric).
    """
    self._replicas = strategy.num_replicas_in_sync
    self._local = threading.local()  # MirroredStrategy traces per thread.
    self._is_loss_scaled = isinstance(
        model.optimizer, keras.optimizers.LossScaleOptimizer)
    self._missed_scale_loss = False
    self._calls_per_step = 1  # compute_loss calls in a training step.
    self._logged_in_compute_loss = False  # By an override of it.
    with strategy.scope():
      # The global-batch loss compute_loss gave per training step.
      self._observed = keras.metrics.Mean(name="observed_loss")
    self._wrap_compute_loss(model)
    for metric in model.metrics:
      if type(metric) is keras.metrics.Mean:  # pylint: disable=unidiomatic-typecheck
        self._wrap_mean(metric)
    if self._is_loss_scaled:
      self._wrap_scale_loss(model.optimizer)

  def _trace(self) -> _StepTrace | None:
    return getattr(self._local, "trace", None)

  def _wrap_compute_loss(self, model: keras.Model) -> None:
    original = model.compute_loss
    signature = inspect.signature(original)

    @functools.wraps(original)
    def compute_loss(*args, **kwargs):
      trace = self._trace()
      if trace is None:
        return original(*args, **kwargs)
      trace.inside_compute_loss += 1
      try:
        loss = original(*args, **kwargs)
      finally:
        trace.inside_compute_loss -= 1
      if isinstance(loss, tf.Tensor):
        rows = _rows(signature, args, kwargs)
        trace.results[loss.ref()] = rows
        trace.losses.append(loss)
        if trace.rows is None:
          trace.rows = rows
      return loss

    model.compute_loss = compute_loss

  def _wrap_mean(self, metric: keras.metrics.Mean) -> None:
    original = metric.update_state

    @functools.wraps(original)
    def update_state(values, sample_weight=None):
      trace = self._trace()
      if trace is not None and trace.inside_compute_loss:
        trace.updated_by_compute_loss.add(id(metric))
        if metric.name == LOSS_METRIC and trace.training:
          self._logged_in_compute_loss = True
      elif trace is not None and id(metric) in trace.updated_by_compute_loss:
        # A per-output loss of compile() that compute_loss updated already;
        # the guide's `metric.update_state(y, y_pred)` would add y to it.
        return None
      elif (trace is not None and isinstance(values, tf.Tensor)
            and values.ref() in trace.results):
        # compute_loss's own result: log it as Keras's default step does.
        rows = trace.results[values.ref()]
        values = unscaled_loss(values)
        if sample_weight is None:
          sample_weight = rows
      return original(values, sample_weight=sample_weight)

    metric.update_state = update_state

  def _wrap_scale_loss(self, optimizer) -> None:
    """Notes `scale_loss` and `apply` (`apply_gradients` calls it)."""
    for name in ("scale_loss", "apply"):
      original = getattr(optimizer, name)

      def noted(*args, original=original, name=name, **kwargs):
        trace = self._trace()
        if trace is not None:
          setattr(trace, "scaled_loss" if name == "scale_loss" else "applied",
                  True)
        return original(*args, **kwargs)

      setattr(optimizer, name, functools.wraps(original)(noted))

  def wrap_step(self, step_fn, *, training: bool):
    """`step_fn(data)` with the watch active while it is traced.

    Args:
      step_fn: The model's `train_step` or `test_step`.
      training: Whether it trains (its losses feed `check`).

    Returns:
      A function of `data` returning what `step_fn` returns.
    """

    def step(data):
      trace = _StepTrace(training)
      self._local.trace = trace
      try:
        result = step_fn(data)
      finally:
        self._local.trace = None
      if training and trace.losses:
        total = tf.add_n([tf.cast(loss, tf.float32)
                          for loss in trace.losses])
        self._observed.update_state(unscaled_loss(total),
                                    sample_weight=trace.rows)
        self._calls_per_step = len(trace.losses)
        if self._is_loss_scaled and trace.applied and not trace.scaled_loss:
          self._missed_scale_loss = True
      return result

    return step

  def reset(self) -> None:
    self._observed.reset_state()

  def observed_loss(self) -> tf.Tensor:
    """Since `reset`, the mean over training steps of the sum of their
    `compute_loss` results, un-scaled (call in cross-replica context)."""
    return self._observed.result()

  def check(self, logs: dict, observed: float) -> str | None:
    """One sentence if the logged training "loss" is not compute_loss's.

    Args:
      logs: The metric results of the first training loop.
      observed: `observed_loss()` read at the same point.

    Returns:
      A warning to log, or None: also when the model logs no "loss", never
      called `compute_loss`, or logs another quantity under "loss".
    """
    if self._missed_scale_loss:
      return _MISSED_SCALE_LOSS
    logged = logs.get(LOSS_METRIC)
    if logged is None or not observed:
      return None
    if logged == 0.0:
      return _NEVER_UPDATED.format(observed=observed)
    # The step may log the sum of its compute_loss results, or their mean.
    candidates = (observed, observed / self._calls_per_step)
    if self._replicas == 1 or any(_close(logged, value)
                                  for value in candidates):
      return None
    for expected in candidates:
      if _close(logged * self._replicas, expected):
        text = (_DIVIDED_IN_COMPUTE_LOSS if self._logged_in_compute_loss
                else _DIVIDED)
        return text.format(logged=logged, expected=expected,
                           replicas=self._replicas)
    return None  # Another quantity, logged under "loss" on purpose.


_MISSED_SCALE_LOSS = (
    "Your train_step computes gradients of compute_loss()'s result without"
    " self.optimizer.scale_loss(), so under mixed_float16 the"
    " LossScaleOptimizer divides them by its loss scale and the model barely"
    " trains; differentiate `self.optimizer.scale_loss(loss)` (inside the"
    " tape), as Keras's default train_step does.")
_NEVER_UPDATED = (
    "The training 'loss' logged is 0 while compute_loss() gives"
    " {observed:.4g}: your train_step never updates the 'loss' metric"
    " (compute_metrics() leaves it alone); update it with compute_loss()'s"
    " result, e.g. `for metric in self.metrics: if metric.name == 'loss':"
    " metric.update_state(loss)`.")
_DIVIDED = (
    "The training 'loss' logged ({logged:.4g}) is the global-batch loss"
    " ({expected:.4g}) divided by the {replicas} replicas (compute_loss()"
    " returns it scaled for distribution); log"
    " `trainer.loss_tracking.unscaled_loss(loss)` instead, or give the"
    " 'loss' metric compute_loss()'s result unchanged.")
_DIVIDED_IN_COMPUTE_LOSS = (
    "The training 'loss' logged ({logged:.4g}) is compute_loss()'s value"
    " un-scaled ({expected:.4g}) divided by the {replicas} replicas: if your"
    " compute_loss() override logs Keras's scaled loss, log"
    " `trainer.loss_tracking.unscaled_loss(loss)`; if it returns a loss not"
    " divided by the {replicas} replicas, the gradients are {replicas}x the"
    " global batch's, so divide what it returns by"
    " `self.distribute_strategy.num_replicas_in_sync` as Keras's losses do.")


def _close(value: float, reference: float) -> bool:
  return abs(value - reference) <= _RELATIVE_TOLERANCE * abs(reference)
