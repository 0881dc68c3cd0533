#!/usr/bin/env bash
# Slim the vllm wheel, bundle the wheels + a committed portal snapshot + the A/B harness, split into chunks.
#   perf/real_vllm/pack.sh [COMMIT] [CHUNK_MIB]     -> perf/.pack/real_vllm/c0 .. cN (one chunk each)
# Each chunk travels in its own `run` call (carry: perf/.pack/real_vllm/cK); with the working tree it must stay
# under 64 MiB. The slim wheel drops FlashAttention-2 (loaded inside try/except; Hopper uses FA3), the Rust
# front end (used only with VLLM_RUST_FRONTEND_PATH) and deep_gemm builds for other Pythons.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(cd "$HERE/../.." && pwd)"
PACK="$ROOT/perf/.pack/real_vllm"; COMMIT="${1:-HEAD}"; CHUNK="${2:-60}"
HARNESS="${PERF_PEERS_DIR:-$ROOT/../shared/perf-peers}"
cd "$PACK"
W=$(ls whl/vllm-0.26.0-*.whl)
if unzip -l "$W" | grep -q _vllm_fa2_C; then
  zip -q -d "$W" 'vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so' 'vllm/vllm-rs' \
    'vllm/third_party/deep_gemm/_C.cpython-31[0134]-x86_64-linux-gnu.so'
fi
rm -rf stage c[0-9]* && mkdir -p stage/harness
git -C "$ROOT" archive --format=tar.gz -o "$PACK/stage/portal.tar.gz" "$COMMIT"
git -C "$ROOT" rev-parse "$COMMIT" > stage/portal.commit
cp "$HARNESS"/{abbench.py,loadgen.py,upstream.py} stage/harness/
tar cf - whl pwhl -C stage portal.tar.gz portal.commit harness | split -b "${CHUNK}M" -d -a 2 - part
i=0; for f in part*; do mkdir -p "c$i"; mv "$f" "c$i/"; i=$((i+1)); done
rm -rf stage; du -b c*/part* | sort -k2
echo "portal snapshot $(git -C "$ROOT" rev-parse --short "$COMMIT"); $i chunks"
