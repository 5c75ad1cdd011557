"""What `import aecourse` does to the process: it sets OpenMP's wait policy, once."""

import os
import subprocess
import sys

PRINT_POLICY = "import os, aecourse, torch; print(os.environ['OMP_WAIT_POLICY'])"


def _policy(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", PRINT_POLICY], env={**clean, **env},
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_import_makes_waiting_openmp_threads_sleep():
    assert _policy() == "PASSIVE"


def test_a_policy_set_by_the_user_is_kept():
    assert _policy(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"
