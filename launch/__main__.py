"""`python -m launch`: train a Keras model with tf.distribute, resumably.

Runs on this machine's GPUs or CPUs, or as one worker of a multi-worker job
(TF_CONFIG, Slurm, or `python -m launch.local`); the same as calling
`launch.fit` with these options. A rerun with the same --model_dir resumes.

Exit codes: 0 done; 2 bad input (flags, TF_CONFIG, data, model: one `error:`
line, nothing written); 1 the run failed; 42 stopped by SIGTERM/SIGUSR1
after saving a checkpoint: relaunch to resume.
"""

# The docstring above is the prose of `--help` (see launch.usage).
from launch import main  # pylint: disable=g-import-not-at-top

main.run()
