"""The one GPU placement decision of a training process, for every entry.

`python -m launch` and `launch.fit` (directly, or in a script started by
`launch.local`, srun, Ray or a Kubernetes job) all call `place_this_process`
from `launch.api.plan`, before TensorFlow lists the GPUs:

* `launch.local` (TF_CONFIG from the supervisor): keeps the
  CUDA_VISIBLE_DEVICES the supervisor gave it (`devices.place_local_workers`);
* Kubernetes (TFJob, Vertex AI) and Ray Train (TF_CONFIG set): keep the
  GPUs their launcher gave the process (the device plugin's, or Ray's,
  CUDA_VISIBLE_DEVICES);
* srun without TF_CONFIG: `devices.slurm_task_gpus`, its share by
  SLURM_LOCALID when Slurm did not bind GPUs to tasks;
* nothing of these (alone): every visible GPU.

`decide` is pure (an environment in, a `ProcessPlacement` out), so every
row is tested on simulated nodes; `place_this_process` applies it to this
process once. After start-up, `compare_gpus_seen` checks that TensorFlow
sees the GPUs the process was given (`launch.distributed.strategy` logs it).
"""

from collections.abc import Mapping, Sequence
import dataclasses
import os

from absl import logging

from launch.distributed import devices
from launch.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class ProcessPlacement:
  """The GPUs one process trains on.

  Attributes:
    entry: How the process was started: "tf_config" (launch.local,
      Kubernetes, Ray, any TF_CONFIG), "slurm" (an srun task) or "alone".
    gpus: The GPU ids it uses, as CUDA_VISIBLE_DEVICES names them.
    env: Variables to set before TensorFlow lists the GPUs ({}: none).
    description: One sentence for the log; "" when there is nothing to say.
  """

  entry: str
  gpus: tuple[str, ...]
  env: Mapping[str, str]
  description: str = ""


def decide(environ: Mapping[str, str], *,
           num_node_gpus: int) -> ProcessPlacement:
  """The GPUs of the process whose environment is `environ`.

  Args:
    environ: The process's environment.
    num_node_gpus: `devices.count_node_gpus()`; used only when
      CUDA_VISIBLE_DEVICES is unset.

  Raises:
    ConfigError: As `devices.parse_visible_devices` and
      `devices.slurm_task_gpus`.
  """
  visible = tuple(devices.parse_visible_devices(
      environ.get(devices.VISIBLE_DEVICES), num_node_gpus=num_node_gpus))
  if environ.get("TF_CONFIG", "").strip():
    # The launcher (launch.local, a device plugin, Ray) chose per process.
    return ProcessPlacement("tf_config", visible, {})
  task = devices.slurm_task_gpus(environ, num_node_gpus=num_node_gpus)
  if task is not None:
    return ProcessPlacement("slurm", task.gpus, dict(task.env),
                            task.description)
  return ProcessPlacement("alone", visible, {})


_placed: list[ProcessPlacement] = []


def place_this_process() -> ProcessPlacement:
  """Decides this process's GPUs once, sets CUDA_VISIBLE_DEVICES, logs it.

  CUDA reads CUDA_VISIBLE_DEVICES once, when TensorFlow first lists the
  devices; so the first decision holds for the process (a notebook's later
  `fit` calls get the same).

  Raises:
    ConfigError: If the decision fails, or needs another
      CUDA_VISIBLE_DEVICES after TensorFlow already listed the GPUs (the
      user's own TensorFlow call before `fit`).
  """
  if _placed:
    return _placed[0]
  placement = decide(os.environ,
                     num_node_gpus=devices.node_gpus_if_unlisted(os.environ))
  changed = {name: value for name, value in placement.env.items()
             if os.environ.get(name) != value}
  if changed:
    from trainer import private_apis  # pylint: disable=import-outside-toplevel
    if private_apis.gpus_listed():
      raise ConfigError(
          f"this Slurm task must use GPUs {','.join(placement.gpus)} only,"
          " but TensorFlow already listed the GPUs in this process (a"
          " TensorFlow call before fit), after which CUDA_VISIBLE_DEVICES"
          " no longer applies; call fit before any other TensorFlow call,"
          " or bind GPUs to tasks (srun --gpus-per-task).")
    os.environ.update(changed)
  if placement.description:
    logging.info("%s", placement.description)
  _placed.append(placement)
  return placement


@dataclasses.dataclass(frozen=True)
class GpusSeen:
  """What TensorFlow sees of the GPUs a process was given.

  Attributes:
    description: One sentence for the log; "" without GPUs.
    warning: One sentence if TensorFlow sees other GPUs than given, or "".
  """

  description: str
  warning: str = ""


def compare_gpus_seen(given: Sequence[str], *, num_seen: int,
                      is_listed: bool) -> GpusSeen:
  """Compares the GPUs a process was given with those TensorFlow sees.

  Checked after start-up because CUDA, not the variable, decides: CUDA
  shows a process only the first of several MIG devices, and a TensorFlow
  without GPU support sees none.

  Args:
    given: The process's GPUs (`devices.parse_visible_devices`).
    num_seen: `len(tf.config.list_physical_devices("GPU"))`.
    is_listed: Whether CUDA_VISIBLE_DEVICES named them (else: the node's
      GPUs as the driver counts them).
  """
  if not given and not num_seen:
    return GpusSeen("")
  source = (f"{devices.VISIBLE_DEVICES}={devices.ids(given)}" if is_listed
            else f"all {devices.plural(len(given), 'GPU')} of the node")
  seen = devices.plural(num_seen, "GPU")
  if len(given) == num_seen:
    return GpusSeen(f"GPUs: TensorFlow sees {seen}, as given ({source}).")
  description = f"GPUs: TensorFlow sees {seen}; given: {source}."
  if not given:  # No driver directory and no variable: nothing to compare.
    return GpusSeen(description)
  mig = [gpu for gpu in given if gpu.startswith("MIG-")]
  if len(mig) > 1 and num_seen == 1:
    fix = ("CUDA shows a process only one MIG device; run one process per"
           " MIG device (launch.local --gpus_per_worker=1, or one Slurm task"
           " per device)")
  elif not num_seen:
    fix = ("this TensorFlow has no GPU support or cannot load CUDA (pip"
           " install 'tensorflow[and-cuda]'), so it runs on the CPU")
  else:
    fix = f"check {devices.VISIBLE_DEVICES} and nvidia-smi"
  return GpusSeen(description, f"this process was given"
                  f" {devices.plural(len(given), 'GPU')} ({source}) but"
                  f" TensorFlow sees {seen}: {fix}.")
