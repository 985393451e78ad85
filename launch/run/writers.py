"""What a run records that only launch knows: its settings for HParams.

The writers themselves (TensorBoard, metrics files, progress) are
`trainer.writers`; launch hands them plain values.
"""

from launch.run import plan as plan_lib


def _hparams(plan: plan_lib.Plan, model) -> dict:
  """The run's settings for TensorBoard's HParams tab."""
  from trainer import tensorboard
  config, train = plan.config, plan.config.train
  model_name = train.model
  if plan.model_fn is not None and ":" not in model_name:  # Given in Python.
    model_name = (f"{getattr(plan.model_fn, '__module__', '?')}:"
                  f"{getattr(plan.model_fn, '__qualname__', '?')}")
  return {"model": model_name, "dataset": plan.train_source.name,
          "global_batch_size": config.data.global_batch_size,
          "seed": config.seed, "strategy": plan.strategy_kind,
          "replicas": plan.num_replicas,
          **tensorboard.model_hparams(train, model,
                                      is_built_in=plan.model_fn is None)}


def hparams(plan: plan_lib.Plan, model) -> dict:
  """The run's settings for TensorBoard's HParams tab (see `_hparams`)."""
  return _hparams(plan, model)
