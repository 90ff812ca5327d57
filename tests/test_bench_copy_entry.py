"""bench/copy.py is the name issue #8 gives the copy bench; Python puts a script's folder first on
sys.path, so that file must never stand in for the standard `copy` module."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_python(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_imported_from_the_bench_folder_it_is_the_standard_copy_module():
    result = run_python("-c", "import sys; sys.path.insert(0, 'bench'); import copy; import django.conf; "
                              "nested = [[1]]; clone = copy.deepcopy(nested); clone[0].append(2); "
                              "print(copy.__file__, nested)")
    assert result.returncode == 0, result.stderr
    module_file, nested = result.stdout.split(" ", 1)
    assert Path(module_file).parent != ROOT / "bench"
    assert nested.strip() == "[[1]]"


def test_run_as_a_script_it_runs_the_copy_drafts_bench():
    result = run_python("bench/copy.py", "--help")
    assert result.returncode == 0, result.stderr
    assert "--products" in result.stdout
    assert "fact check" in result.stdout  # the copy_drafts docstring is the help text
