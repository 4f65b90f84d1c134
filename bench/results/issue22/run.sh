#!/usr/bin/env bash
# before/after of the router step, interleaved, same broker settings, same machine
set -u
PY=/work/main/.venv/bin/python
for round in 3 4 5; do
  for side in before after; do
    if [ $side = before ]; then TREE=/tmp/before; else TREE=/work/main; fi
    (cd $TREE && PYTHONPATH=$TREE $PY bench/runtime_bench.py --skip-pipeline --runtimes batch,quixstreams \
      --intakes 10000 --repeat 2 --raw-repeat 1 --quix-python /tmp/cepbus-quix-venv/bin/python \
      --port $((19750 + round * 10)) --json-out /tmp/bench/$side-$round.json > /tmp/bench/$side-$round.log 2>&1)
    echo "$side $round exit $?" >> /tmp/bench/progress
  done
done
