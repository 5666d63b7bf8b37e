#!/usr/bin/env python3
"""Runs the data-science notebooks headless against a backbeat Flight SQL server.

    export BACKBEAT_FLIGHT_URI=grpc://127.0.0.1:50050      # `backbeat serve --bind 127.0.0.1:50050 --lake lake`
    export BACKBEAT_FLIGHT_TOKEN=...                       # when the server wants a bearer token
    "$(bash scripts/notebook_venv.sh)" scripts/run_notebooks.py [NOTEBOOK.ipynb ...]

Every notebook (notebooks/*.ipynb by default) runs top to bottom in a fresh `python3` kernel of the
interpreter running this script (the notebook venv, which has ipykernel), each cell with a timeout.
The executed copies, outputs included, go to $BACKBEAT_NOTEBOOK_OUT (default notebooks/out/), and
so do the figures the notebooks save: the kernels inherit the variable. Prints PASS or FAIL with the
duration per notebook, the failing cell's error for each failure, and exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CELL_TIMEOUT_S = 600
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

try:
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
except ImportError as e:  # run with the wrong interpreter
    sys.exit(f"{e}: run this with the notebook venv's python: \"$(bash scripts/notebook_venv.sh)\" {sys.argv[0]}")


def kernel_manager() -> KernelManager:
    """A manager for a `python3` kernel, checked to start this interpreter (jupyter_client turns
    the kernelspec's bare `python` into sys.executable; a kernelspec naming another python would
    run the notebooks without this venv's packages)."""
    km = KernelManager(kernel_name="python3")
    cmd = km.format_kernel_cmd()
    if os.path.realpath(cmd[0]) != os.path.realpath(sys.executable):
        sys.exit(f"the python3 kernel would run {cmd[0]}, not {sys.executable}: install ipykernel in this venv")
    return km


def failing_cell(nb) -> str:
    """The first error output of the executed notebook: cell number, source head, traceback."""
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                source = "\n".join(cell.source.splitlines()[:6])
                trace = ANSI.sub("", "\n".join(output.get("traceback", [])))
                return f"cell {index}:\n{source}\n---\n{trace}"
    return ""


def run(path: Path, out_dir: Path) -> bool:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        km=kernel_manager(),
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        # ipykernel logs a warning about unencrypted local TCP into the first cell's output otherwise.
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
        resources={"metadata": {"path": str(path.parent)}},
    )
    started = time.monotonic()
    error = None
    try:
        client.execute()
    except CellExecutionError as e:
        error = failing_cell(nb) or ANSI.sub("", str(e))
    except (CellTimeoutError, DeadKernelError) as e:
        error = f"{type(e).__name__}: {ANSI.sub('', str(e))}"
    except Exception as e:  # the kernel did not start, or the client failed: this notebook fails, the others still run
        error = f"{type(e).__name__}: {e}"
    elapsed = time.monotonic() - started
    executed = out_dir / path.name
    nbformat.write(nb, executed)
    status = "PASS" if error is None else "FAIL"
    print(f"{status} {path.name} {elapsed:.1f}s -> {executed}", flush=True)
    if error is not None:
        print("    " + error.replace("\n", "\n    "), flush=True)
    return error is None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: notebooks/*.ipynb)")
    args = parser.parse_args()
    paths = [p.resolve() for p in args.notebooks] or sorted((REPO / "notebooks").glob("*.ipynb"))
    if not paths:
        print("no notebooks to run", file=sys.stderr)
        return 1
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 1
    if not os.environ.get("BACKBEAT_FLIGHT_URI"):
        print("BACKBEAT_FLIGHT_URI is not set: start `backbeat serve --bind 127.0.0.1:PORT --lake DIR` "
              "and export BACKBEAT_FLIGHT_URI=grpc://127.0.0.1:PORT (and BACKBEAT_FLIGHT_TOKEN if it wants one)", file=sys.stderr)
        return 1
    out_dir = Path(os.environ.get("BACKBEAT_NOTEBOOK_OUT") or REPO / "notebooks" / "out").resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ["BACKBEAT_NOTEBOOK_OUT"] = str(out_dir)  # the kernels save their figures here too
    results = [run(p, out_dir) for p in paths]
    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
