"""What a run can be told: every option defined once with its facts (`definitions`), the `RunConfig` (`config`), and options -> validated config (`resolve.to_config`)."""
