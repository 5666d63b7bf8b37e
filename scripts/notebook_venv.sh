#!/usr/bin/env bash
# The notebooks' Python (notebooks/requirements.txt: ADBC Flight SQL, pandas, matplotlib, nbclient, ipykernel): ensures its venv, prints its python. BACKBEAT_NOTEBOOK_VENV overrides the venv path.
BACKBEAT_VENV="${BACKBEAT_NOTEBOOK_VENV:-}" exec bash "$(dirname "$0")/python_venv.sh" notebook "$(dirname "$0")/../notebooks/requirements.txt"
