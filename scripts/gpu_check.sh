#!/usr/bin/env bash
# The GPU path in one run, sized for at most ~6 minutes on one H100: the `gpu` tests;
# bench_train.py for transformer_base (bf16, eager and compiled) and transformer_big (bf16, with the
# blockwise loss and with PyTorch's F.cross_entropy, to see whether the blockwise loss pays on a GPU);
# transformer_small trained on Multi30k for 3 minutes; test_2016_flickr translated with beam 5
# through bench_translate.py and scored. Prints every figure with the device name; the last line
# is one JSON object of them all.
#
#   bash scripts/gpu_check.sh [--data-path DIR] [--work DIR] [--cpu-dry-run]
#
# --data-path: Multi30k as the hub id bentrevett/multi30k (the default) or a local copy of its
#   layout (offline machines). --cpu-dry-run: the same steps, tiny, on the CPU, on the built-in
#   corpus, so the script is tested where there is no GPU (the gpu tests are then skipped).
# PYTHON selects the interpreter (default: python).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
data_path=bentrevett/multi30k work=runs/gpu_check dry=0
while [ $# -gt 0 ]; do
  case $1 in
    --data-path) data_path=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --cpu-dry-run) dry=1; shift ;;
    *) sed -n '2,13p' "$0" >&2; exit 2 ;;
  esac
done
rm -rf "$work"
mkdir -p "$work"

if [ $dry = 1 ]; then
  data=(data=builtin "data.builtin_sizes={train:200,valid:10,test:10}" data.vocab_size=200 data.max_tokens=400
        "data.cache_dir=$work/cache")
  tiny=(model.d_model=32 model.heads=4 model.ffn_dim=64 model.encoder_layers=1 model.decoder_layers=1)
  bench=(--data builtin --precision fp32 --compile off --steps 1 --warmup 1 "${data[@]:1}" "${tiny[@]}")
  bench_base=("${bench[@]}") bench_big=("${bench[@]}" --loss blockwise autograd)
  train=("${data[@]}" model=transformer_small "${tiny[@]}" trainer.max_steps=4 trainer.valid_every=4)
  translate=(--device cpu --single 2 --pytorch-only)
else
  data=(data=multi30k "data.path=$data_path")
  bench=(--data multi30k --data-path "$data_path" --seconds 8)
  bench_base=("${bench[@]}" --precision bf16 --compile both)
  bench_big=("${bench[@]}" --precision bf16 --compile off --loss blockwise autograd)
  train=(experiment=multi30k_transformer "data.path=$data_path" trainer.max_minutes=3 trainer.valid_every=1000)
  translate=(--single 50 --pytorch-only)
fi

step() { echo "== $* ($(date +%T))" >&2; }
step prepare
cache=$($PY -m nmt.prepare "${data[@]}" | tail -n 1)
step gpu tests
$PY -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider --junitxml="$work/gpu_tests.xml" \
  | tee "$work/gpu_tests.out" || true  # failures are counted in the summary, not fatal to the figures
step bench_train transformer_base
$PY scripts/bench_train.py --model transformer_base "${bench_base[@]}" | tee "$work/bench_base.out"
step bench_train transformer_big
$PY scripts/bench_train.py --model transformer_big "${bench_big[@]}" | tee "$work/bench_big.out"
step train transformer_small
$PY -m nmt.train "${train[@]}" "run_dir=$work/train" | tee "$work/train.out"
checkpoint=$work/train/checkpoints/best.pt
step bench_translate beam 5
$PY scripts/bench_translate.py --checkpoint "$checkpoint" --input "$cache/test.src.txt" \
  --output "$work/test.hyp" "${translate[@]}" | tee "$work/translate.out"
$PY -m nmt.evaluate "hyp=$work/test.hyp" "ref=$cache/test.tgt.txt" "report_dir=$work/report" bootstrap=0 \
  randomization=0 >/dev/null

$PY - "$work" <<'EOF'
import ast, json, sys
import xml.etree.ElementTree as ET
from pathlib import Path

work = Path(sys.argv[1])
last = lambda name: (work / name).read_text().strip().splitlines()[-1]  # noqa: E731
suite = ET.parse(work / "gpu_tests.xml").getroot().iter("testsuite").__next__()
tests = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
bench = [json.loads(last(f)) for f in ("bench_base.out", "bench_big.out")]
train = ast.literal_eval(last("train.out").replace("-inf", "None"))
report = json.loads((work / "report/report.json").read_text())
figures = {"device": json.loads(last("translate.out"))["device"], "gpu_tests": tests,
           "bench_train": [r for b in bench for r in b["results"]],
           "train": {"steps": train["step"], "stop": train["reason"], "valid": train["valid"]},
           "translate": json.loads(last("translate.out")),
           "test_bleu": round(report["bleu"]["score"], 2), "test_chrf": round(report["chrf"]["score"], 2)}
print(f"device: {figures['device']}")
print(f"gpu tests: {tests['tests']} run, {tests['failures'] + tests['errors']} failed, {tests['skipped']} skipped")
for r in figures["bench_train"]:
    mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
    print(f"bench_train {r['model']} {r['precision']} compiled={r['compiled']} loss={r['loss']}: "
          f"{r['tokens_per_second']:.0f} tok/s, "
          f"{r['peak_memory_mib']:.0f} MiB, MFU {mfu} ({r['peak'] or 'no peak known'})")
print(f"train transformer_small: {train['step']} steps ({train['reason']})")
print(f"test_2016_flickr beam 5: BLEU {figures['test_bleu']}, chrF {figures['test_chrf']}")
print(json.dumps(figures))
EOF
