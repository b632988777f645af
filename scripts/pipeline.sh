#!/usr/bin/env bash
# Translate a test set with several checkpoints, then write one comparison report
# (the first checkpoint is the baseline of the significance tests).
#
#   bash scripts/pipeline.sh TEST_SET OUT_DIR CHECKPOINT [CHECKPOINT ...]
#   bash scripts/pipeline.sh multi30k_2016 reports/compare runs/multi30k_gru/checkpoints/best.pt \
#        runs/multi30k_transformer/checkpoints/best.pt
#
# TEST_SET names a file in configs/test/; its files come from sacreBLEU (downloaded once), or from
# a local copy when TEST_ROOT=DIR is set (as test_root=DIR of nmt.evaluate).
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,10p' "$0" >&2
  exit 2
fi
test_set=$1 out=$2
shift 2
PY=${PYTHON:-python}
root=${TEST_ROOT:-}
config="$(dirname "$0")/../configs/test/$test_set.yaml"
[ -f "$config" ] || { echo "error: no test set $test_set in configs/test/" >&2; exit 2; }
src=$($PY - "$config" "$root" <<'EOF'
import sys
from omegaconf import OmegaConf
from nmt.config import EvalSetConfig
from nmt.errors import NmtError
from nmt.evaluation.report import eval_set_files
test = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(EvalSetConfig), OmegaConf.load(sys.argv[1])))
try:
    print(eval_set_files(test, sys.argv[2] or None)[1])
except NmtError as error:
    sys.exit(f"error: {error}")
EOF
)
mkdir -p "$out"
hyps=()
for checkpoint in "$@"; do
  name=$(basename "$(dirname "$(dirname "$checkpoint")")")
  $PY -m nmt.translate checkpoint="$checkpoint" input="$src" output="$out/$name.hyp" decode.beam_size=5
  hyps+=("$out/$name.hyp")
done
list=$(IFS=,; echo "${hyps[*]}")
$PY -m nmt.evaluate "hyp=[$list]" test="$test_set" ${root:+test_root="$root"} report_dir="$out"
