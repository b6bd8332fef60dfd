"""The packaged program's entry point (PyInstaller): ``workstation`` as the CLI runs it.

The decoder workers (``workstation.imaging.isolated``) and ``workstation batch`` start
child processes of this same executable: ``freeze_support`` lets them run as workers
instead of starting the CLI again.
"""

from __future__ import annotations

import multiprocessing
import sys


def run() -> int:
    multiprocessing.freeze_support()
    from workstation.cli import main

    try:
        return main()
    except ModuleNotFoundError as exc:  # e.g. `workstation train` in the CPU package
        sys.stderr.write(
            f"workstation: this command needs the full source install (the module "
            f"{exc.name} is not part of this package); see the README, 'Set up and run'\n")
        return 3


if __name__ == "__main__":
    sys.exit(run())
