"""What a run can be told: every option's definition, and the validated `RunConfig` built from them."""
