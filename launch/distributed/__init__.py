"""The distributed environment: cluster (TF_CONFIG/Slurm), devices, GPU use, strategy, rendezvous, liveness, signals."""
