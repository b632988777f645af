#!/usr/bin/env bash
# Translate a test set with several checkpoints, then write one comparison report
# (the first checkpoint is the baseline of the significance tests).
#
#   bash scripts/pipeline.sh TEST_SET OUT_DIR CHECKPOINT [CHECKPOINT ...]
#   bash scripts/pipeline.sh multi30k_2016 reports/compare runs/multi30k_gru/checkpoints/best.pt \
#        runs/multi30k_transformer/checkpoints/best.pt
#
# TEST_SET names a file in configs/test/; TEST_ROOT (default ../shared/data) is where it lives.
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,9p' "$0" >&2
  exit 2
fi
test_set=$1 out=$2
shift 2
PY=${PYTHON:-python}
root=${TEST_ROOT:-../shared/data}
config="$(dirname "$0")/../configs/test/$test_set.yaml"
[ -f "$config" ] || { echo "error: no test set $test_set in configs/test/" >&2; exit 2; }
src=$(sed -n 's/^src: \${test_root}\///p' "$config")
mkdir -p "$out"
hyps=()
for checkpoint in "$@"; do
  name=$(basename "$(dirname "$(dirname "$checkpoint")")")
  $PY -m nmt.translate checkpoint="$checkpoint" input="$root/$src" output="$out/$name.hyp" decode.beam_size=5
  hyps+=("$out/$name.hyp")
done
list=$(IFS=,; echo "${hyps[*]}")
$PY -m nmt.evaluate "hyp=[$list]" test="$test_set" test_root="$root" report_dir="$out"
