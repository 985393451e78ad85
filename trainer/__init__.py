"""The training library: model contract, step functions, loop, checkpoints.

`trainer` never reads flags and never imports `launch` or `datasets`; it is
handed a strategy, a model, sources (objects with `train_dataset_fn` and
`eval_dataset_fn`), a frozen `FitConfig` and callbacks. Its front door:

    result = trainer.fit(strategy=strategy, model=model, train_data=train,
                         eval_data=held_out, config=trainer.FitConfig(...),
                         callbacks=[...])

`build_model` / `build_user_model` build the model in the strategy's scope
first. The names below load on first use (TensorFlow takes seconds to
import; `trainer.config` alone does not import it).
"""

import importlib

# Public name -> (module, attribute).
_EXPORTS = {
    "fit": ("trainer.fitting", "fit"),
    "evaluate": ("trainer.fitting", "evaluate"),
    "FitConfig": ("trainer.fitting", "FitConfig"),
    "FitResult": ("trainer.fitting", "FitResult"),
    "check_callbacks": ("trainer.callback_list", "check_callbacks"),
    "resume_step": ("trainer.fitting", "resume_step"),
    "TrainConfig": ("trainer.config", "TrainConfig"),
    "Callback": ("trainer.callbacks", "Callback"),
    "BuiltOnce": ("trainer.pipelines", "BuiltOnce"),
    "batch_spec": ("trainer.pipelines", "batch_spec"),
    "build_model": ("trainer.build", "build_model"),
    "build_user_model": ("trainer.user_models", "build_user_model"),
    "is_compiled": ("trainer.user_models", "is_compiled"),
    "network_of": ("trainer.user_models", "network_of"),
    "Model": ("trainer.model", "Model"),
    "StopRequested": ("trainer.controller", "StopRequested"),
    "NonFiniteLossError": ("trainer.controller", "NonFiniteLossError"),
    "CheckpointError": ("trainer.checkpointing", "CheckpointError"),
    "warm_start": ("trainer.warm_start", "warm_start"),
    "WarmStartError": ("trainer.warm_start", "WarmStartError"),
    "StorageError": ("trainer.storage", "StorageError"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
  if name not in _EXPORTS:
    raise AttributeError(f"module 'trainer' has no attribute {name!r}")
  module, attribute = _EXPORTS[name]
  value = getattr(importlib.import_module(module), attribute)
  globals()[name] = value
  return value
