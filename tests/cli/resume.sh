# loom train --resume and the checkpoint folder: a resumed run takes its
# settings from the checkpoint (the validation split's seed too) and refuses
# contradicting ones; it appends to the run's log and keeps saving to the
# run's folder; extending a finished cosine run is refused without --lr and
# restarts from it with; Ctrl-C saves mid-epoch and the resumed run ends bit
# for bit where an uninterrupted one does; two runs cannot share a folder;
# leftover temporaries are removed; a fresh run does not overwrite a folder
# that holds one.
. "$(dirname "$0")/lib.sh"
mk_csv d 2000 100
common="--data d/train.csv --val-split 0.1 --seed 7 --deterministic --batch 32 --quiet"

run train $common --epochs 4 --checkpoint whole
expect "uninterrupted run" 0 "final validation accuracy"
run train $common --epochs 4 --stop-after 2 --checkpoint part
expect "--stop-after 2" 0 "stopped after 2 epochs as asked" "resume with: loom train --resume part/last.safetensors"

run train --resume part/last.safetensors --data d/train.csv --val-split 0.1 --batch 64
expect "a contradicting --batch is refused" 2 "--batch 64 contradicts the checkpoint, whose run has --batch 32"
run train --resume part/last.safetensors --model minivgg
expect "a contradicting --model is refused" 2 "--model minivgg contradicts the checkpoint"
run train --resume part/last.safetensors --optim adam
expect "a contradicting --optim is refused" 2 "--optim adam contradicts the checkpoint"
run train --resume part/last.safetensors --lr 0.1
expect "--lr on an unfinished run is refused" 2 "--lr 0.1 contradicts the checkpoint, whose run has --lr 0.05"
run train --resume part/last.safetensors --epochs 5 --lr 0.1
expect "--lr with more epochs on an unfinished run is refused" 2 "--lr: a resumed run keeps its learning rate"
run train --resume part/last.safetensors --init whole/last.safetensors
expect "--resume with --init is refused" 2 "exclude each other"

# the resumed run: same split (seed 7), same settings, appends to the log, saves to its folder
run train --resume part/last.safetensors --data d/train.csv --val-split 0.1 --seed 7 --threads 1
expect "resume with agreeing options" 0 "held out (stratified, seed 7)" "resuming after epoch 2 of 4" "epoch 4/4"
check "resumed run ends with the uninterrupted run's weights" [ "$(digest part/last.safetensors)" = "$(digest whole/last.safetensors)" ]
check "the log holds all 4 epochs" [ "$(grep -c '^[0-9]' part/metrics.csv)" = 4 ]
check "the log equals the uninterrupted run's (but for timings)" \
    [ "$(cut -d, -f1-6 part/metrics.csv)" = "$(cut -d, -f1-6 whole/metrics.csv)" ]

# a finished run
run train --resume part/last.safetensors
expect "resuming a finished run: nothing to do" 0 "has finished all 4 epochs; nothing to do"
run train --resume part/last.safetensors --lr 0.01
expect "--lr without more epochs on a finished run is refused, not ignored" 2 "--lr 0.01: the run has trained all its 4 epochs"
run train --resume part/last.safetensors --epochs 6
expect "extending a finished cosine run without --lr is refused" 2 "ended after epoch 4" "Give --lr X"
run train --resume part/last.safetensors --epochs 3
expect "fewer epochs than done is refused" 2 "has already trained 4 epochs"
run train --resume part/last.safetensors --epochs 6 --lr 0.01 --optim adam
expect "a warm restart refused for another setting" 2 "--optim adam contradicts the checkpoint"
lacks "a refused run announces no re-plan" "re-planned"
run train --resume part/last.safetensors --epochs 6 --lr 0.01 --threads 100000
expect "a warm restart refused for --threads" 2 "more than"
lacks "a refused run announces no re-plan (2)" "re-planned"
run train --resume part/last.safetensors --epochs 6 --lr 0.01
expect "a warm restart with --lr" 0 "re-planned from 4 to 6 epochs" "restarted after epoch 4 from 0.01" "epoch 6/6"
check "the restart trains at the given rate" grep -q '^5,.*,0.01,' part/metrics.csv
check "the log holds all 6 epochs" [ "$(grep -c '^[0-9]' part/metrics.csv)" = 6 ]

# a step schedule extends without a restart
run train --data d/train.csv --val-split 0.1 --epochs 2 --schedule step:1:0.5 --checkpoint st --quiet
expect "a step-schedule run" 0
run train --resume st/last.safetensors --epochs 3
expect "extending a step schedule continues it" 0 "re-planned from 2 to 3 epochs" "epoch 3/3"
check "the step schedule goes on (epoch 3 at 0.05 x 0.5^2)" grep -q '^3,.*,0.0125,' st/metrics.csv

# Ctrl-C in the middle of a run: saved, and the resumed run ends where an uninterrupted one does
"$LOOM" train $common --epochs 2 --checkpoint sig >sig.out 2>&1 &
pid=$!
for _ in $(seq 600); do [ -s sig/metrics.csv ] && break; sleep 0.05; done
kill -INT $pid
wait $pid
rc=$?
out=$(cat sig.out)
err=""
expect "SIGINT stops, saves and says how to resume" 130 "interrupted in epoch 2" "resume with: loom train --resume sig/last.safetensors"
run train --resume sig/last.safetensors --threads 1
expect "resume after SIGINT" 0 "epoch 2/2"
run train $common --epochs 2 --checkpoint sig2
check "interrupted + resumed == uninterrupted" [ "$(digest sig/last.safetensors)" = "$(digest sig2/last.safetensors)" ]

# two runs on one folder
"$LOOM" train --data d/train.csv --epochs 50 --checkpoint busy --quiet >busy.out 2>&1 &
pid=$!
for _ in $(seq 600); do [ -s busy/.lock ] && break; sleep 0.05; done
run train --data d/train.csv --epochs 1 --checkpoint busy --overwrite
expect "a second run on a busy folder is refused" 1 "busy is in use by another loom process (pid $pid)"
# SIGTERM once it trains (the lock comes before the data is read; a slow sanitizer build may still be reading it)
for _ in $(seq 1200); do [ -s busy/last.safetensors ] && break; sleep 0.05; done
kill -TERM $pid
wait $pid
rc=$?
out=$(cat busy.out)
expect "SIGTERM saves too" 143 "interrupted in epoch"

# a fresh run into a folder that holds one
run train --data d/train.csv --epochs 1 --checkpoint part
expect "a fresh run does not overwrite a folder with a run" 2 "holds a run already" "--resume part/last.safetensors" "--overwrite"
run train --data d/train.csv --epochs 1 --checkpoint st --overwrite --quiet
expect "--overwrite replaces it" 0 "final validation accuracy"
run summary st/last.safetensors
expect "the replaced folder holds the new run" 0 "trained 1 of 1 epochs"

# continuing a run in another folder: never into a folder that holds a run; a new one gets last, and best
# only if an epoch there is better (the final line says where the best is)
d_st=$(digest st/last.safetensors) d_whole=$(digest whole/last.safetensors)
run train --resume whole/last.safetensors --epochs 5 --lr 0.001 --checkpoint st
expect "continuing into a folder with a run is refused" 2 "--checkpoint st holds a run already" "would replace it"
check "that run is left as it was" [ "$(digest st/last.safetensors)" = "$d_st" ]
run train --resume whole/last.safetensors --epochs 5 --lr 0.000001 --checkpoint moved
expect "continuing in a new folder" 0 "checkpoints: moved/last.safetensors"
if [ -e moved/best.safetensors ]; then
    expect "a best written there is named there" 0 "moved/best.safetensors (epoch 5"
else
    expect "a best not written there is named where it is" 0 "is whole/best.safetensors, as no epoch since was better"
fi
check "the first folder is left as it was" [ "$(digest whole/last.safetensors)" = "$d_whole" ]

# leftovers of a killed write are removed when the folder is opened
head -c 1000 /dev/urandom >part/last.safetensors.tmp.Ab12Cd
cp part/best.safetensors part/best.next.safetensors
run train --resume part/last.safetensors
expect "stale temporaries and an uncommitted best.next are cleaned up" 0 "removed 2 leftover files"
check "no temporaries remain" [ -z "$(ls part | grep -E 'tmp|next')" ]
finish
