#!/usr/bin/env bash
# Time `make TARGET` the way a new user meets it: a fresh clone of this repository, the data mirror linked beside it,
# an empty judgefactory cache (the embedded base is prepared again), and /usr/bin/time -v around make.
#   dev/fresh_clone.sh adapter-pairwise /tmp/pairwise      # log in /tmp/pairwise.full, summary on stdout
#   dev/fresh_clone.sh "adapter-pairwise profile=full" /tmp/pwfull   # make variables go inside the quotes
# Station times come from the file times in the clone (.venv/.installed, cache/bases, adapters/.work, cache/quick_eval).
set -u
target=${1:?usage: fresh_clone.sh TARGET LOG}
log=${2:?usage: fresh_clone.sh TARGET LOG}
repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
shared=$(realpath "$repo/../shared")
d=$(mktemp -d /tmp/fresh-XXXX)
git clone -q "$repo" "$d/p"
ln -s "$shared" "$d/shared"
export JUDGEFACTORY_CACHE=$d/cache
cd "$d/p"
echo "clone: $d/p  commit: $(git rev-parse --short HEAD)  start: $(date -u +%T)"
# shellcheck disable=SC2086  # the target may carry make variables (profile=full)
/usr/bin/time -v make $target 2>&1 | tr '\r' '\n' | grep -v '^$' > "$log.full"
echo "end: $(date -u +%T)"
grep -E "Elapsed|loss .* over|parse_rate|base  |adapter |quick held-out|[Ee]rror" "$log.full" | tail -40
