#!/usr/bin/env bash
# Download the pinned cp312 manylinux wheels for the GPU machine (Python 3.12, torch 2.11.0+cu130, no network):
# vllm 0.26.0 (the newest release pinning torch 2.11.0) with the small dependencies the machine lacks, and the
# portal's node-side runtime. Wheel file names (= pins) are listed in wheels-vllm.txt / wheels-portal.txt.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(cd "$HERE/../.." && pwd)"
PACK="$ROOT/perf/.pack/real_vllm"; mkdir -p "$PACK/whl" "$PACK/pwhl"
P=(--only-binary=:all: --python-version 3.12 --implementation cp)
for n in 5 12 17 24 26 27 28 31 34 35; do P+=(--platform "manylinux_2_${n}_x86_64"); done
P+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux2010_x86_64)
pins() { sed -E 's/^([A-Za-z0-9_.]+)-([^-]+)-.*/\1==\2/' "$1"; }
python3 -m pip download -q --no-deps "${P[@]}" -d "$PACK/whl" $(pins "$HERE/wheels-vllm.txt")
python3 -m pip download -q --no-deps "${P[@]}" -d "$PACK/pwhl" $(pins "$HERE/wheels-portal.txt")
ls "$PACK/whl" | diff - "$HERE/wheels-vllm.txt" && ls "$PACK/pwhl" | diff - "$HERE/wheels-portal.txt"
echo "wheels in $PACK/whl and $PACK/pwhl"
