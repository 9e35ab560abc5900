#!/usr/bin/env bash
# The GPU line end to end in minutes (D24): a few QLoRA steps per Gemma 3 4B specialist (unsloth), the
# quick check of each on the GPU, their NuSLERP merge (mergekit), a bench subset through vLLM, the model card, and one
# summary table. Everything it writes is named smoke-*, so the full adapters and merges are never overwritten.
#
#   make venv-gpu && make gpu-smoke            # on a GPU machine; the base from the hub or the HF cache
#
# Variables (defaults in brackets): PAIRWISE / ABSOLUTE [pairwise-gemma-3-4b / absolute-gemma-3-4b] adapter recipes,
# MERGE [gemma_3_4b_nuslerp_50_50] the merge recipe naming them (names in recipes/, or .yaml paths), STEPS [20] optimizer
# steps per specialist, LIMIT [40] items per quick check and bench suite, BACKEND [vllm] the bench engine, TAG [smoke]
# the prefix of every artifact name, PAIR_SET [bbq_pairs] the pair set built first (empty: none), LOG [report/$TAG].
# The same plumbing on a CPU (minutes on 2 cores; tests/test_gpu_smoke.py runs it on tiny models):
#   PAIRWISE=pairwise ABSOLUTE=absolute MERGE=nuslerp_50_50 BACKEND=transformers STEPS=2 LIMIT=4 scripts/gpu_smoke.sh
# Offline (a machine without the hub, its model in the HF cache): HF_HUB_OFFLINE=1; the data come from
# JUDGEFACTORY_DATA (the Makefile sets it to ../shared/data when that mirror is there).
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRWISE=${PAIRWISE:-pairwise-gemma-3-4b}
ABSOLUTE=${ABSOLUTE:-absolute-gemma-3-4b}
MERGE=${MERGE:-gemma_3_4b_nuslerp_50_50}
STEPS=${STEPS:-20}
LIMIT=${LIMIT:-40}
BACKEND=${BACKEND:-vllm}
TAG=${TAG:-smoke}
PY=${PY:-.venv/bin/python}
JF=${JF:-.venv/bin/judgefactory}
LOG=${LOG:-report/$TAG}
mkdir -p "$LOG"
: > "$LOG/seconds.tsv"

step() {  # step NAME CMD...: run, keep its log, record its wall time; stop the script on failure
  local name=$1 t0 rc=0
  shift
  t0=$(date +%s)
  echo "== $name: $*" >&2
  "$@" > "$LOG/$name.log" 2>&1 || rc=$?
  printf '%s\t%s\t%s\n' "$name" "$(( $(date +%s) - t0 ))" "$rc" >> "$LOG/seconds.tsv"
  if [ "$rc" -ne 0 ]; then
    tail -n 20 "$LOG/$name.log" >&2
    echo "error: $name failed (exit $rc); log: $LOG/$name.log" >&2
    exit "$rc"
  fi
}

# the smoke names, and the merge recipe's own method and weights with its models renamed to the smoke adapters (the
# recipes found and validated as every command does: judgefactory.recipes)
names=$("$PY" -c 'import sys, yaml
from judgefactory import recipes
pw, ab, mg, tag = sys.argv[1:]
try:
    merge = recipes.load(recipes.find("merges", mg))
    for name in (pw, ab):
        print(tag + "-" + recipes.load(recipes.find("adapters", name)).name)
except recipes.RecipeError as err:
    sys.exit(print(f"error: {err}", file=sys.stderr) or 2)
print(f"{tag}-{merge.name}")
models = [{**m.model_dump(mode="json", exclude_none=True), "adapter": f"{tag}-{m.adapter}"} for m in merge.models]
print(yaml.safe_dump(models, default_flow_style=True, width=10**6).strip())' "$PAIRWISE" "$ABSOLUTE" "$MERGE" "$TAG")
mapfile -t names <<< "$names"
P_NAME=${names[0]} A_NAME=${names[1]} M_NAME=${names[2]} models=${names[3]}

if [ -n "${PAIR_SET-bbq_pairs}" ]; then step pairs "$JF" pairs build "${PAIR_SET-bbq_pairs}"; fi
for task in pairwise absolute; do
  if [ "$task" = pairwise ]; then recipe=$PAIRWISE name=$P_NAME; else recipe=$ABSOLUTE name=$A_NAME; fi
  step "train-$task" "$JF" train "$recipe" --set "name=$name" "train.max_steps=$STEPS" "train.save_steps=$STEPS" \
    "quick_eval.limit=$LIMIT"
done
step merge "$JF" merge "$MERGE" --set "name=$M_NAME" "models=$models"
step bench-pairwise "$JF" bench "merge:$M_NAME" bbq_pairs --limit "$LIMIT" --backend "$BACKEND"
step bench-absolute "$JF" bench "merge:$M_NAME" vicuna --limit "$LIMIT" --backend "$BACKEND"
step card "$JF" card --merge "$M_NAME"
"$PY" scripts/gpu_smoke_table.py --pairwise "$P_NAME" --absolute "$A_NAME" --merge "$M_NAME" \
  --seconds "$LOG/seconds.tsv" --backend "$BACKEND" | tee "$LOG/summary.md"
