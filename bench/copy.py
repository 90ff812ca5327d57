"""Product copy drafts (issue #8), under the name the issue gives: runs bench/copy_drafts.py.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/copy.py [--products 50] [--kind description] ...

Python puts a script's folder first on sys.path, so for every script run from bench/ a plain
`import copy` (Django, argparse, dataclasses ...) would find this file instead of the standard
library's `copy`. Both ways in are handled: imported as `copy`, this file hands back the standard
module; run as a script, it takes bench/ off sys.path before anything imports `copy`, then runs
bench/copy_drafts.py.
"""

import sys

if __name__ == "__main__":
    from pathlib import Path

    _root = Path(__file__).resolve().parent.parent
    sys.path[0] = str(_root)  # replaces bench/ (the script's folder), so `import copy` finds the standard one
    import runpy

    runpy.run_module("bench.copy_drafts", run_name="__main__", alter_sys=True)
elif __name__ == "copy":
    import importlib.util
    import sysconfig
    from pathlib import Path

    _spec = importlib.util.spec_from_file_location("copy", Path(sysconfig.get_path("stdlib")) / "copy.py")
    _standard_copy = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_standard_copy)
    # The import system returns whatever sys.modules holds for the name once this file has run.
    sys.modules[__name__] = _standard_copy
