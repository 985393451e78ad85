"""Ray stays optional: the harness never imports it unless a Ray process did."""

import subprocess
import sys

from tests.processes import REPO_ROOT, harness_env


def test_the_harness_does_not_import_ray():
  code = ("import sys\n"
          "import launch, launch.main, launch.run.execute\n"
          "from launch.distributed import ray_train\n"
          "assert ray_train.ray_session() is None\n"
          "assert 'ray' not in sys.modules, 'ray was imported'\n")
  result = subprocess.run([sys.executable, "-c", code], env=harness_env(),
                          cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
