#!/usr/bin/env bash
# issue #23 before (main ec053fc, a worktree at /tmp/ci-main) / after (the branch, /work/main),
# same machine, same session, interleaved: the router step (runtime_bench) and the whole pipeline
# (pipeline_bench: burst, then 50 and 200 intakes/s), with the CPU each process spent.
set -u
PY=/work/main/.venv/bin/python
OUT=${OUT:-/tmp/b23final}
mkdir -p $OUT
for round in 1 2 3; do
  for side in before after; do
    if [ $side = before ]; then TREE=/tmp/ci-main; else TREE=/work/main; fi
    (cd $TREE && PYTHONPATH=$TREE $PY bench/runtime_bench.py --skip-pipeline --runtimes batch \
      --intakes 10000 --repeat 2 --raw-repeat 1 \
      --port $((19800 + round * 10)) --json-out $OUT/runtime-$side-$round.json > $OUT/runtime-$side-$round.log 2>&1)
    echo "runtime $side $round exit $?" >> $OUT/progress
    (cd $TREE && PYTHONPATH=$TREE $PY bench/pipeline_bench.py --routers 1 --rates 50,200 --duration 10 \
      --repeat 2 --intakes 10000 --port $((19900 + round * 10)) --metrics-base $((9800 + round * 40)) \
      --json-out $OUT/pipeline-$side-$round.json > $OUT/pipeline-$side-$round.log 2>&1)
    echo "pipeline $side $round exit $?" >> $OUT/progress
  done
done
echo done >> $OUT/progress
