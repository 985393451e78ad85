"""What a run records that only launch knows: its settings for HParams.

The writers themselves (TensorBoard, metrics files, progress) are
`trainer.writers`; launch hands them plain values.
"""

from launch.run import plan as plan_lib


def hparams(plan: plan_lib.Plan, model) -> dict:
  """The run's settings for TensorBoard's HParams tab.

  The options marked as hparams (`Option.hparam`) that apply to this
  model, with what the run resolved (the data's name, the strategy) and,
  for a compiled model, what compile() chose.
  """
  from launch.options import definitions as options_lib
  from trainer import tensorboard, user_models
  is_compiled = user_models.is_compiled(model)
  values = options_lib.hparams(plan.config, is_built_in=plan.model_fn is None,
                               is_compiled=is_compiled)
  model_name = plan.config.train.model
  if plan.model_fn is not None and ":" not in model_name:  # Given in Python.
    model_name = (f"{getattr(plan.model_fn, '__module__', '?')}:"
                  f"{getattr(plan.model_fn, '__qualname__', '?')}")
  values.update(model=model_name, dataset=plan.train_source.name,
                strategy=plan.strategy_kind, replicas=plan.num_replicas)
  if is_compiled:
    values.update(tensorboard.compiled_model_hparams(model))
  return values

