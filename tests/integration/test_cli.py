"""`python -m launch` as a user runs it: exit codes, messages, files."""

import json

import pytest

from tests.processes import launch_in_this_process, run_launch

WORKERS_2 = {"worker": ["localhost:2222", "localhost:2223"]}


def tf_config(cluster, task):
  return json.dumps({"cluster": cluster, "task": task})


@pytest.mark.slow
def test_mlp_on_four_logical_cpus_reaches_95_percent(tmp_path):
  result = run_launch(["--model=mlp", "--dataset=digits", "--cpu_devices=4",
                       "--global_batch_size=64", "--train_steps=300",
                       f"--model_dir={tmp_path}"])
  assert result.returncode == 0, result.stderr[-3000:]
  final = result.stdout.strip().splitlines()[-1]
  assert final.startswith("Final eval at step 300:")
  accuracy = float(final.split("accuracy ")[1].split()[0].rstrip(","))
  assert accuracy >= 0.95
  assert "MirroredStrategy with 4 replica(s)" in result.stderr
  assert "step 300/300" in result.stderr and "ETA" in result.stderr
  assert "\r" not in result.stderr  # No progress bar without a terminal.
  assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_flagfile_is_honoured(tmp_path):
  flagfile = tmp_path / "flags.txt"
  flagfile.write_text(f"--train_steps=20\n--model_dir={tmp_path / 'run'}\n"
                      "--steps_per_loop=10\n")
  result = run_launch([f"--flagfile={flagfile}"])
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Final eval at step 20:" in result.stdout


BAD_INPUTS = {
    "tf_config not json": ([], {"TF_CONFIG": "{oops"}, "not valid JSON"),
    "tf_config missing task": ([], {"TF_CONFIG": json.dumps(
        {"cluster": WORKERS_2})}, "no \"task\""),
    "tf_config index out of range": ([], {"TF_CONFIG": tf_config(
        WORKERS_2, {"type": "worker", "index": 5})}, "out of range"),
    "tf_config unknown task type": ([], {"TF_CONFIG": tf_config(
        WORKERS_2, {"type": "master", "index": 0})}, "not a role"),
    "tf_config bad host:port": ([], {"TF_CONFIG": tf_config(
        {"worker": ["localhost:http"]}, {"type": "worker", "index": 0})},
        "not host:port"),
    "tf_config duplicate address": ([], {"TF_CONFIG": tf_config(
        {"worker": ["a:1", "a:1"]}, {"type": "worker", "index": 0})},
        "to both"),
    "tf_config ps": ([], {"TF_CONFIG": tf_config(
        {"worker": ["a:1"], "ps": ["a:2"]}, {"type": "worker", "index": 0})},
        "parameter-server"),
    "evaluator under multi_worker": (["--strategy=multi_worker"], {
        "TF_CONFIG": tf_config({"worker": ["a:1"], "evaluator": ["a:2"]},
                               {"type": "evaluator", "index": 0})},
        "an evaluator task runs apart"),
    "watch without evaluate": (["--watch"], {}, "--watch needs --mode=evaluate"),
    "two-input model on one input": (["--model=functional"], {},
                                     "needs a dataset with two named inputs"),
    "one loss for two outputs": (["--dataset=digits_two_targets"], {},
                                 "give one loss per output"),
    "slurm count mismatch": ([], {
        "SLURM_PROCID": "0", "SLURM_NTASKS": "3", "SLURM_JOB_NODELIST": "n1",
        "SLURM_TASKS_PER_NODE": "2", "SLURM_STEP_ID": "0"},
        "add up to 2, not SLURM_NTASKS=3"),
    "slurm batch script": ([], {
        "SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_JOB_NODELIST": "n1",
        "SLURM_TASKS_PER_NODE": "2"}, "this is the batch script of a Slurm"
        " job of 2 tasks"),
    "mirrored under a cluster": (["--strategy=mirrored"], {
        "TF_CONFIG": tf_config(WORKERS_2, {"type": "worker", "index": 0})},
        "needs --strategy=multi_worker"),
    "batch not divisible": (["--cpu_devices=4", "--global_batch_size=30"], {},
                            "does not divide over the 4 replicas"),
    "batch larger than data": (["--global_batch_size=4096"], {},
                               "larger than digits's 1437"),
    "micro-batches do not divide": (["--global_batch_size=64",
                                     "--accumulate_steps=3"], {},
                                    "does not split into --accumulate_steps=3"),
    "binary loss on ten classes": (["--loss=binary_crossentropy"], {},
                                   "needs 2 classes, but digits has 10"),
    "xla on logical cpus": (["--jit_compile", "--cpu_devices=2"], {},
                            "--jit_compile needs GPUs or a single replica"),
    "early stopping without evals": (["--early_stopping_patience=2"], {},
                                     "acts on evaluations; set --eval_every"),
    "monitor not a metric": (["--monitor=auc", "--eval_every=10",
                              "--keep_best_checkpoint"], {},
                             "--monitor=auc is not an eval metric"),
    "plateau with a schedule": (["--plateau_patience=2", "--eval_every=10",
                                 "--lr_schedule=warmup_cosine"], {},
                                "cannot be combined with --lr_schedule"),
    "negative steps": (["--train_steps=-3"], {}, "--train_steps=-3 must be"),
    "zero batch": (["--global_batch_size=0"], {}, "must be positive"),
    "steps and epochs": (["--train_steps=5", "--epochs=1"], {},
                         "either --train_steps or --epochs"),
    "unknown model": (["--model=resnet"], {}, "--model=resnet is not one of"),
    "unknown dataset": (["--dataset=cifar"], {}, "--dataset=cifar"),
    "unknown optimizer": (["--optimizer=lamb"], {}, "--optimizer=lamb"),
    "unknown strategy": (["--strategy=tpu"], {}, "--strategy=tpu"),
    "missing mnist file": (["--dataset=mnist", "--data_dir=DATA"], {},
                           "holds no mnist.npz"),
    "corrupt mnist file": (["--dataset=mnist", "--data_dir=CORRUPT"], {},
                           "not a readable MNIST archive"),
    "data_dir missing": (["--data_dir=/nonexistent/data"], {},
                         "is not a directory"),
    "unknown flag": (["--trian_steps=5"], {}, "Unknown command line flag"),
    "non-integer flag": (["--train_steps=ten"], {}, "train_steps"),
    "positional argument": (["train"], {}, "unexpected arguments"),
    "bad synthetic shape": (["--dataset=synthetic", "--synthetic_shape=28,x"],
                            {}, "--synthetic_shape=28,x"),
    "bad validation split": (["--validation_split=1.5"], {},
                             "--validation_split=1.5"),
}


def bad_input_args(tmp_path, args):
  (tmp_path / "data").mkdir()
  (tmp_path / "corrupt").mkdir()
  (tmp_path / "corrupt" / "mnist.npz").write_bytes(b"\x00garbage")
  return [*(arg.replace("DATA", str(tmp_path / "data")).replace(
      "CORRUPT", str(tmp_path / "corrupt")) for arg in args),
          f"--model_dir={tmp_path / 'run'}"]


@pytest.mark.parametrize("args,env,message", BAD_INPUTS.values(),
                         ids=BAD_INPUTS.keys())
def test_bad_input_exits_2_with_one_sentence_and_writes_nothing(
    tmp_path, monkeypatch, args, env, message):
  # In this process, through launch.main's own parsing and checks (a
  # process per case would cost seconds of TensorFlow import each); the
  # test below runs a few of them as real processes.
  monkeypatch.delenv("TF_CONFIG", raising=False)
  for name, value in env.items():
    monkeypatch.setenv(name, value)
  code, errors = launch_in_this_process(bad_input_args(tmp_path, args))
  assert code == 2
  assert len(errors) == 1 and message in errors[0], errors
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("case", [
    # Refused before TensorFlow loads: quick. After it loads (seconds of
    # import per process): in the slow selection.
    "tf_config not json", "unknown flag",
    *(pytest.param(case, marks=pytest.mark.slow) for case in (
        "batch not divisible", "corrupt mnist file",
        "two-input model on one input"))])
def test_bad_input_in_a_real_process_has_no_traceback(tmp_path, case):
  args, env, message = BAD_INPUTS[case]
  result = run_launch(bad_input_args(tmp_path, args), **env)
  assert result.returncode == 2, (result.stdout, result.stderr[-2000:])
  assert "Traceback" not in result.stderr
  errors = [line for line in result.stderr.splitlines()
            if line.startswith("error:")]
  assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
  assert not (tmp_path / "run").exists()


def test_model_dir_that_is_a_file_exits_2(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("keep me")
  result = run_launch([f"--model_dir={blocker}/run"])
  assert result.returncode == 2
  assert "is not writable" in result.stderr
  assert blocker.read_text() == "keep me"


@pytest.mark.parametrize("value", ["5", "0,3", "9,2", "a,b", "50,5000"])
def test_bad_profile_steps_exit_2(tmp_path, value):
  result = run_launch([f"--profile_steps={value}", "--train_steps=100",
                       f"--model_dir={tmp_path}"])
  assert result.returncode == 2
  assert "--profile_steps=" in result.stderr and "Traceback" not in (
      result.stderr)
