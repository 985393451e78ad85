"""The training library: model contract, step functions, loop, checkpoints.

`trainer` never reads flags and never imports `launch` or `datasets`; it is
handed a strategy, a model, dataset functions and frozen configs.
"""
