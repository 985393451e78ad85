"""Command-line flags of `python -m launch`. Read only by `launch.config`."""

from absl import flags

from datasets.config import DATASET_NAMES
from launch.strategy import STRATEGY_KINDS
from trainer.config import (LOSS_NAMES, LR_SCHEDULES, METRIC_NAMES,
                            MODEL_NAMES, OPTIMIZER_NAMES, PRECISION_POLICIES)

# Flag values are validated in launch.config, which raises one clear
# sentence; DEFINE_enum is avoided so that error has the same shape.
MODEL = flags.DEFINE_string(
    "model", "mlp", f"Network to train: {', '.join(MODEL_NAMES)}, or"
    " package.module:function, a builder fn(input_shape, spec).")
DATASET = flags.DEFINE_string(
    "dataset", "digits", f"Dataset: {', '.join(DATASET_NAMES)}.")
DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Directory with on-disk data (mnist.npz for mnist; the"
    " files of python -m launch.write_tfrecords for tfrecord).")
CACHE = flags.DEFINE_boolean(
    "cache", False, "tfrecord: keep parsed records in memory after the first"
    " pass (in-memory datasets are always decoded once).")
SHUFFLE_BUFFER = flags.DEFINE_integer(
    "shuffle_buffer", 10_000, "tfrecord: records in the shuffle buffer.")
VALIDATION_SPLIT = flags.DEFINE_float(
    "validation_split", 0.0,
    "Hold out this fraction of the training data (the last examples) for"
    " evaluation instead of the test split.")
SYNTHETIC_EXAMPLES = flags.DEFINE_integer(
    "synthetic_examples", 60_000, "Training examples of --dataset=synthetic.")
SYNTHETIC_EVAL_EXAMPLES = flags.DEFINE_integer(
    "synthetic_eval_examples", 10_000, "Eval examples of synthetic data.")
SYNTHETIC_SHAPE = flags.DEFINE_list(
    "synthetic_shape", ["28", "28", "1"], "Feature shape of synthetic data.")
NUM_CLASSES = flags.DEFINE_integer(
    "num_classes", 10, "Classes of synthetic data.")
GLOBAL_BATCH_SIZE = flags.DEFINE_integer(
    "global_batch_size", 64,
    "Examples per step over all replicas; must divide by the replica count.")
TRAIN_STEPS = flags.DEFINE_integer(
    "train_steps", None, "Total training steps (or use --epochs).")
EPOCHS = flags.DEFINE_float(
    "epochs", None, "Passes over the training data (or use --train_steps).")
STEPS_PER_LOOP = flags.DEFINE_integer(
    "steps_per_loop", 50, "Steps per compiled call and per log line.")
EVAL_EVERY = flags.DEFINE_integer(
    "eval_every", 0, "Evaluate every N steps; 0 evaluates at the end only.")
CHECKPOINT_EVERY = flags.DEFINE_integer(
    "checkpoint_every", 500,
    "Save a checkpoint every N steps; 0 saves at the end only.")
KEEP_CHECKPOINTS = flags.DEFINE_integer(
    "keep_checkpoints", 3, "How many of the newest checkpoints to keep.")
MODEL_DIR = flags.DEFINE_string(
    "model_dir", None,
    "Directory for checkpoints, summaries, metrics and the export; a rerun"
    " with the same directory resumes.")
STRATEGY = flags.DEFINE_string(
    "strategy", "auto", f"Distribution: {', '.join(STRATEGY_KINDS)}.")
CPU_DEVICES = flags.DEFINE_integer(
    "cpu_devices", 1,
    "Without GPUs, split the CPU into this many logical devices and mirror"
    " over them (in every worker of a multi-worker run).")
GPU_MEMORY = flags.DEFINE_string(
    "gpu_memory", "auto", "GPU memory per process: auto (growth when several"
    " processes of the run share this node, else all), growth, all, or a"
    " per-GPU limit in MB.")
COLLECTIVE_TIMEOUT = flags.DEFINE_float(
    "collective_timeout", 300.0,
    "Multi-worker: a worker exits 1 when one compiled call (a loop of"
    " --steps_per_loop steps, an evaluation call, the stop agreement) takes"
    " longer than this many seconds, e.g. because a peer is stuck; it must"
    " exceed the longest loop plus the chief's checkpoint save. 0: wait"
    " forever.")
STARTUP_TIMEOUT = flags.DEFINE_float(
    "startup_timeout", 900.0,
    "Multi-worker: a worker exits 1 when the other workers have not all"
    " joined within this many seconds; 0: wait forever.")
OPTIMIZER = flags.DEFINE_string(
    "optimizer", "adam", f"Optimizer: {', '.join(OPTIMIZER_NAMES)}.")
LEARNING_RATE = flags.DEFINE_float(
    "learning_rate", 3e-3,
    "Learning rate (3e-3: short runs converge faster than with 1e-3).")
MOMENTUM = flags.DEFINE_float("momentum", 0.9, "Momentum of --optimizer=sgd.")
WEIGHT_DECAY = flags.DEFINE_float(
    "weight_decay", 0.004, "Decoupled weight decay of --optimizer=adamw.")
L2 = flags.DEFINE_float("l2", 0.0, "L2 regularization of the kernels.")
SEED = flags.DEFINE_integer("seed", 0, "Seed of the shuffle and the weights.")
JIT_COMPILE = flags.DEFINE_boolean(
    "jit_compile", False, "Compile the training step with XLA.")
LOSS = flags.DEFINE_string(
    "loss", "sparse_categorical_crossentropy",
    f"Loss: {', '.join(LOSS_NAMES)}; for a multi-output model one per"
    " output: output:loss,output:loss.")
LOSS_WEIGHTS = flags.DEFINE_list(
    "loss_weights", [], "Multi-output models: output:weight pairs (Keras's"
    " loss_weights); unnamed outputs weigh 1.")
FROM_LOGITS = flags.DEFINE_boolean(
    "from_logits", True,
    "The network emits logits (else softmax/sigmoid probabilities).")
METRICS = flags.DEFINE_list(
    "metrics", ["accuracy"], f"Metrics, comma-separated: {', '.join(METRIC_NAMES)}.")
DROPOUT = flags.DEFINE_float(
    "dropout", 0.25, "Dropout rate of cnn, functional and subclassed (random"
    " per replica).")
SYNC_BATCHNORM = flags.DEFINE_boolean(
    "sync_batchnorm", False,
    "BatchNormalization statistics over the global batch, not per replica.")
MIXED_PRECISION = flags.DEFINE_string(
    "mixed_precision", "float32",
    f"Keras dtype policy: {', '.join(PRECISION_POLICIES)}.")
CLIP_NORM = flags.DEFINE_float(
    "clip_norm", 0.0, "Clip the all-reduced gradient's global norm; 0: off.")
ACCUMULATE_STEPS = flags.DEFINE_integer(
    "accumulate_steps", 1,
    "Split each replica's batch into this many micro-batches and sum their"
    " gradients before one update (same result, less memory).")
DETERMINISTIC = flags.DEFINE_boolean(
    "deterministic", False,
    "Deterministic ops: identical runs give bitwise-identical weights.")
HEARTBEAT_FILE = flags.DEFINE_string(
    "heartbeat_file", None,
    "Write the current step here after every loop (for a supervisor's hang"
    " detection; launch.local sets it).")
SLURM_PORT_BASE = flags.DEFINE_integer(
    "slurm_port_base", 8888,
    "Under srun (no TF_CONFIG), task i of a node listens on this port + i.")
MODE = flags.DEFINE_string(
    "mode", "train",
    "train, or evaluate: evaluate the latest checkpoint of --model_dir"
    " without training (a TF_CONFIG evaluator task always evaluates).")
WATCH = flags.DEFINE_boolean(
    "watch", False,
    "With --mode=evaluate: evaluate every new checkpoint as it appears and"
    " stop after the final step (a sidecar evaluator).")
EVAL_TIMEOUT = flags.DEFINE_float(
    "eval_timeout", 3600.0,
    "A watching evaluator gives up after this many seconds without a new"
    " checkpoint.")
ALLOW_CONFIG_CHANGE = flags.DEFINE_boolean(
    "allow_config_change", False,
    "Resume from model_dir even if its config.json differs in model,"
    " dataset, global batch, seed, optimizer, loss or precision.")
LR_SCHEDULE = flags.DEFINE_string(
    "lr_schedule", "constant",
    f"Learning-rate schedule: {', '.join(LR_SCHEDULES)}.")
WARMUP_STEPS = flags.DEFINE_integer(
    "warmup_steps", 0, "warmup_cosine: linear warmup steps before the decay.")
DECAY_STEPS = flags.DEFINE_integer(
    "decay_steps", 1000, "step_decay: steps between two decays.")
DECAY_RATE = flags.DEFINE_float(
    "decay_rate", 0.5, "step_decay: factor applied at every decay.")
MONITOR = flags.DEFINE_string(
    "monitor", "loss", "Eval metric watched by --early_stopping_patience,"
    " --plateau_patience and --keep_best_checkpoint.")
MONITOR_MODE = flags.DEFINE_string(
    "monitor_mode", "auto", "min, max, or auto (max for accuracy, auc,"
    " precision, recall).")
EARLY_STOPPING_PATIENCE = flags.DEFINE_integer(
    "early_stopping_patience", 0,
    "Stop after this many evaluations without improvement (needs"
    " --eval_every); 0: off.")
RESTORE_BEST_WEIGHTS = flags.DEFINE_boolean(
    "restore_best_weights", False,
    "On an early stop, restore (checkpoint and export) the best weights.")
PLATEAU_PATIENCE = flags.DEFINE_integer(
    "plateau_patience", 0, "Reduce the learning rate after this many"
    " evaluations without improvement; 0: off.")
PLATEAU_FACTOR = flags.DEFINE_float(
    "plateau_factor", 0.5, "Learning-rate factor on a plateau.")
PLATEAU_MIN_LR = flags.DEFINE_float(
    "plateau_min_lr", 0.0, "Lowest learning rate the plateau rule sets.")
KEEP_BEST_CHECKPOINT = flags.DEFINE_boolean(
    "keep_best_checkpoint", False,
    "Also keep the checkpoint of the best evaluation in"
    " model_dir/best_checkpoint.")
PROGRESS = flags.DEFINE_enum(
    "progress", "auto", ["auto", "bar", "log", "none"],
    "Chief's progress display: bar (redrawn in place), log (one line per"
    " loop), none; auto is bar on a terminal and log otherwise.")
PROFILE_STEPS = flags.DEFINE_list(
    "profile_steps", [],
    "a,b: record a TensorFlow profiler trace of steps a..b (inclusive) into"
    " model_dir/summaries/train for TensorBoard's Profile tab.")
