#!/bin/bash
# Usage: dev/steps_at_commit.sh COMMIT [RECIPE] [STEPS]   (default: absolute-full, 5 steps)
# Train RECIPE for STEPS optimizer steps (logging every step, no dev curve, one torch thread) with the code AND recipes
# of COMMIT, in a throwaway worktree, workspace and base cache; print the per-step losses. Two commits (or two
# machines) that train the same recipe the same way print the same numbers: how D33 found the change that made the
# absolute specialist's training differ (git bisect run with a wrapper that greps the step that differed).
set -euo pipefail
commit=$1; recipe=${2:-absolute-full}; steps=${3:-5}
repo=$(git rev-parse --show-toplevel); tmp=$(mktemp -d)
git -C "$repo" worktree add -q --detach "$tmp/src" "$commit"
trap 'git -C "$repo" worktree remove --force "$tmp/src"; rm -rf "$tmp"' EXIT
export JUDGEFACTORY_DATA=${JUDGEFACTORY_DATA:-$repo/../shared/data} JUDGEFACTORY_HOME=$tmp/home \
  JUDGEFACTORY_CACHE=$tmp/cache OMP_NUM_THREADS=1 PYTHONPATH=$tmp/src
mkdir -p "$tmp/home"
cd "$tmp/src" && "$repo/.venv/bin/python" -c '
import sys
try:
    from judgefactory.cli.main import main  # after 47dbfc5
except ImportError:
    from judgefactory.cli import main
sys.exit(main())' train "$recipe" --no-eval --set train.max_steps="$steps" train.logging_steps=1 dev=null 2>&1 \
  | grep -ao "{'loss': '[0-9.e-]*', 'grad_norm': '[0-9.e-]*'"
