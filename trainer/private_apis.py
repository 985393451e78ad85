"""The private TensorFlow and Keras APIs the harness uses, each wrapped once.

Checked against TensorFlow 2.21.0 and Keras 3.15.1. Each has no public
route; if a new version breaks one, this module is the only place to fix.
"""

import contextlib
import itertools

_key_bases = itertools.count(1)


def fresh_collective_keys() -> None:
  """Gives the next MirroredStrategy collective keys no earlier one used.

  Every MirroredStrategy numbers its collective groups and instances from
  the same base, so a second strategy in one process (a second `fit` in a
  notebook, on another number of devices or another model) collides with
  the first: "Shape mismatch in the collective instance 100", or "joining
  a group with size 4, but that group has size 2". TensorFlow's own tests
  offset the numbering through this class attribute.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  tf.distribute.MirroredStrategy._collective_key_base = (  # pylint: disable=protected-access
      100_000 * next(_key_bases))


def build_compiled_model(model, element_spec) -> None:
  """Builds a compiled Keras model's layers, loss and metrics from specs.

  Keras 3 builds compile()'s loss and metrics lazily, on the first batch of
  its own `fit`. Run inside the harness's multi-step `tf.function` under a
  MirroredStrategy, that first build fails ("You must feed a value for
  placeholder tensor"), so they are built beforehand, in the strategy's
  scope, from the shapes of one batch. Keras's `fit` does the same through
  this private method; there is no public one.

  Args:
    model: A compiled `keras.Model`.
    element_spec: The `tf.TensorSpec` structure of one per-replica batch,
      `(x, y)` or `(x, y, sample_weight)`.
  """
  model._symbolic_build(data_batch=element_spec)  # pylint: disable=protected-access


def clip_after_all_reduce(optimizer, clip_norm: float) -> None:
  """Clips the gradients `optimizer` has just summed over the replicas.

  Keras's TensorFlow optimizer all-reduces the gradients inside `apply`,
  after its own `clipnorm`/`global_clipnorm` clipped each replica's share,
  and offers no public hook in between. Clipping by the norm of the global
  batch's gradient, with the one all-reduce Keras does anyway, needs its
  private reduction method wrapped (on this instance only); clip_norm 0
  removes the wrapper.

  Args:
    optimizer: A Keras optimizer of the TensorFlow backend (not a
      LossScaleOptimizer: pass its `inner_optimizer`).
    clip_norm: The largest global norm of the summed gradient; 0: no clip.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  name = "_all_reduce_sum_gradients"
  vars(optimizer).pop(name, None)
  if not clip_norm:
    return
  all_reduce = getattr(optimizer, name)  # Keras's, bound.

  def all_reduce_then_clip(grads_and_vars):
    reduced = list(all_reduce(grads_and_vars))
    present = [grad for grad, _ in reduced if grad is not None]
    clipped = iter(tf.clip_by_global_norm(present, clip_norm)[0])
    return [(grad if grad is None else next(clipped), variable)
            for grad, variable in reduced]

  # Keras optimizers track what is set on them; a plain function is kept as
  # is, and an instance attribute shadows the class's method.
  setattr(optimizer, name, all_reduce_then_clip)


def learning_rate_object(optimizer):
  """The optimizer's own learning rate: its variable, or its schedule.

  Keras's public `learning_rate` gives a schedule's current value, not the
  schedule, which `trainer.recovery` wraps (times a factor).
  """
  return optimizer._learning_rate  # pylint: disable=protected-access


def export_input_signature(network):
  """The input specs `network.export()` would use for a SavedModel.

  Keras 3's `Model.export` calls this private helper; it alone handles
  Sequential, functional and subclassed models alike, and there is no
  public route to it.
  """
  from keras.src.export import export_utils  # pylint: disable=import-outside-toplevel
  return export_utils.get_input_signature(network)


@contextlib.contextmanager
def multi_worker_local_devices(devices: list[str]):
  """Makes MultiWorkerMirroredStrategy mirror over `devices` on each worker.

  TensorFlow's public API gives a multi-worker strategy one CPU device per
  worker; mirroring over several logical CPUs (to test 2 workers x 2
  replicas without GPUs) needs its private device hook.
  """
  from tensorflow.python.distribute import collective_all_reduce_strategy  # pylint: disable=g-direct-tensorflow-import

  extended = collective_all_reduce_strategy.CollectiveAllReduceExtended
  original = extended._initialize_local_devices  # pylint: disable=protected-access

  def local_devices(self, cluster_resolver, worker_device):
    del self, cluster_resolver
    names = tuple(f"{worker_device}/device:CPU:{device.rsplit(':', 1)[1]}"
                  for device in devices)
    return names, "CPU"

  extended._initialize_local_devices = local_devices  # pylint: disable=protected-access
  try:
    yield
  finally:
    extended._initialize_local_devices = original  # pylint: disable=protected-access


def write_checkpoint_state(directory: str, latest: str,
                           all_checkpoints: list[str]) -> None:
  """Rewrites `directory`'s `checkpoint` state file to list `all_checkpoints`.

  A lost or garbage state file makes `tf.train.latest_checkpoint` return
  None (a silent restart from step 0) although the checkpoints are there;
  TensorFlow 2 has no public writer of that file besides a
  CheckpointManager's save, so the TF1 function is used. Checked against
  TensorFlow 2.21.0.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  tf.compat.v1.train.update_checkpoint_state(
      directory, latest, all_model_checkpoint_paths=all_checkpoints)


def profiler_step(name: str, step: int):
  """A context marking one training step for TensorBoard's Profile tab.

  The profiler's step-time views find steps by a trace event with
  `step_num` and the private `_r=1` (a root event), as TensorFlow's
  profiler guide shows; there is no public flag. Checked against
  TensorFlow 2.21.0.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  return tf.profiler.experimental.Trace(name, step_num=step, _r=1)


def runtime_started() -> bool:
  """Whether TensorFlow's runtime (its eager context) started in this process.

  It starts at the first op or traced function; from then on collective ops
  (MultiWorkerMirroredStrategy), logical devices and GPU memory settings
  can no longer be configured. TensorFlow has no public query for this;
  `tf.config` calls that would answer it start the runtime themselves.
  Checked against TensorFlow 2.21.0.
  """
  import sys  # pylint: disable=import-outside-toplevel
  if "tensorflow" not in sys.modules:
    return False
  from tensorflow.python.eager import context  # pylint: disable=g-direct-tensorflow-import,import-outside-toplevel
  current = context.context_safe()
  return current is not None and bool(current._initialized)  # pylint: disable=protected-access


def gpus_listed() -> bool:
  """Whether TensorFlow already enumerated the physical devices (and CUDA).

  After that, CUDA has read CUDA_VISIBLE_DEVICES and a change to it no
  longer applies in this process. Private for the same reason as
  `runtime_started`; checked against TensorFlow 2.21.0.
  """
  import sys  # pylint: disable=import-outside-toplevel
  if "tensorflow" not in sys.modules:
    return False
  from tensorflow.python.eager import context  # pylint: disable=g-direct-tensorflow-import,import-outside-toplevel
  current = context.context_safe()
  return current is not None and (
      current._physical_devices is not None or runtime_started())  # pylint: disable=protected-access


def track_rate_variable(optimizer, variable) -> None:
  """Makes `optimizer`'s checkpoint layout that of a float rate (or not).

  A Keras optimizer built with a float learning rate tracks its variable
  at position 1 of `_variables` (after the iteration counter, before the
  slots, which a checkpoint stores by position); built with a schedule it
  has none, so a checkpoint of one layout does not restore into the other
  ("incompatible tensor with shape ..."). Keras's own setter removes the
  variable in place, which TensorFlow then refuses to save (its list
  wrapper tracks append-only lists), so the list is rebuilt instead.

  Args:
    optimizer: A Keras optimizer (not a LossScaleOptimizer).
    variable: The rate variable to track at position 1, or None to track
      none; `_learning_rate` itself is the caller's to set.
  """
  # pylint: disable=protected-access
  kept = [v for v in optimizer._variables
          if v is not optimizer._learning_rate or variable is not None]
  kept = [v for v in kept if v is not variable]
  if variable is not None:
    kept.insert(1, variable)
  set_tracked_variables(optimizer, kept)
  # pylint: enable=protected-access


def set_tracked_variables(optimizer, variables: list) -> None:
  """Makes `variables` the optimizer's tracked (checkpointed) list."""
  # pylint: disable=protected-access
  from keras.src.utils import tracking  # pylint: disable=import-outside-toplevel
  kept = list(variables)
  tracker = optimizer._tracker
  with tracking.DotNotTrackScope():
    # Keras's tracker leaves it alone (it would wrap the list in a list
    # that appends to itself); TensorFlow's wraps it in a fresh
    # (append-only) list wrapper under the same name.
    optimizer._variables = kept
  predicate = tracker.config["variables"][0]
  tracker.config["variables"] = (predicate, optimizer._variables)
  tracker.stored_ids["variables"] = {id(v) for v in optimizer._variables}
  # pylint: enable=protected-access


def hide_attribute(optimizer, name: str):
  """Removes attribute `name` (and its checkpoint dependency); returns its
  value for `show_attribute`."""
  value = getattr(optimizer, name)
  delattr(optimizer, name)
  return value


def show_attribute(optimizer, name: str, value) -> None:
  """Sets an attribute `hide_attribute` removed, tracked as before."""
  from keras.src.utils import tracking  # pylint: disable=import-outside-toplevel
  with tracking.DotNotTrackScope():  # Its variables are in the store.
    setattr(optimizer, name, list(value))


def set_rate_attribute(optimizer, rate) -> None:
  """Sets `optimizer._learning_rate` (a variable or a schedule) untracked
  by Keras's tracker (`track_rate_variable` places a variable) and, for a
  schedule, no longer a checkpoint dependency, as Keras's constructor
  leaves it."""
  from keras.src.utils import tracking  # pylint: disable=import-outside-toplevel
  # pylint: disable=protected-access
  if "_learning_rate" in optimizer._self_unconditional_dependency_names:
    del optimizer._learning_rate  # Drops the dependency too.
  with tracking.DotNotTrackScope():
    optimizer._learning_rate = rate
  # pylint: enable=protected-access


def checkpoint_optimizer_layout(path: str, optimizer_path: tuple
                                ) -> tuple[bool, int]:
  """Whether the optimizer in checkpoint `path` tracked a rate variable,
  and how many variables it tracked.

  Read from the checkpoint's object graph (the node at position 1 of the
  optimizer's `_variables` is its `_learning_rate`), the one record of
  which layout (see `track_rate_variable`) the checkpoint was written in.

  Args:
    path: A checkpoint prefix.
    optimizer_path: Child names from the checkpoint's root to the
      optimizer, e.g. ("optimizer",) or ("optimizer", "inner_optimizer").
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tensorflow.core.protobuf import trackable_object_graph_pb2  # pylint: disable=import-outside-toplevel
  graph = trackable_object_graph_pb2.TrackableObjectGraph()
  graph.ParseFromString(tf.train.load_checkpoint(path).get_tensor(
      "_CHECKPOINTABLE_OBJECT_GRAPH"))

  def child(node_id: int, name: str):
    for reference in graph.nodes[node_id].children:
      if reference.local_name == name:
        return reference.node_id
    return None

  node = 0
  for name in optimizer_path:
    node = child(node, name)
    if node is None:
      return False
  rate, variables = child(node, "_learning_rate"), child(node, "_variables")
  return (rate is not None and variables is not None
          and child(variables, "1") == rate,
          0 if variables is None else len(graph.nodes[variables].children))
