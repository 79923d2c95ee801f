# Every option takes effect or is refused with the reason, and what can be
# checked is checked before the first epoch; exit status 2 for a command
# line that cannot be carried out, 1 for work that failed.
. "$(dirname "$0")/lib.sh"
mk_csv d 600 30
mk_folder f 16 4

run --version
expect "--version" 0 "loom 0." "cairo"
run help
expect "help states the exit status rule" 0 "exit status: 0 done; 1 the work failed" "128+N"
run frobnicate
expect "an unknown command" 2 "unknown command 'frobnicate'"
run train --epochs
expect "a missing value" 2 "--epochs needs a value"
run train --epochs 0
expect "a value out of range" 2 "--epochs: '0' is not a whole number in 1..10000"
run train --bogus
expect "an unknown option" 2 "unknown option '--bogus'"
run train --quiet=1
expect "a value for a flag" 2 "--quiet is a flag and takes no value"
run train --epochs 1 --epochs 2
expect "an option given twice" 2 "--epochs given twice"
run train --init x.safetensors --model lenet5
expect "--init with --model" 2 "exclude each other"
run train --val d/test.csv --val-split 0.2
expect "--val with --val-split" 2 "exclude each other"
run train --model nosuch --data d/train.csv
expect "an unknown model" 2 "no model 'nosuch' in the zoo"
run train --optim nosuch --data d/train.csv
expect "an unknown optimizer" 2 "unknown optimizer 'nosuch'"
run train --nesterov --optim adam --data d/train.csv
expect "--nesterov with adam" 2 "--nesterov applies to --optim sgd"
run train --schedule step:x --data d/train.csv
expect "a bad schedule" 2 "--schedule: schedule 'step:x'"
run train --augment rotate=500 --data d/train.csv
expect "a bad augmentation" 2 "--augment:"
run train --threads 1000 --data d/train.csv
expect "absurd --threads" 2 "more than" "only make it slower"
run train --threads 100000 --data d/train.csv
expect "huge --threads: the real bound and its reason" 2 "more than" "only make it slower"
lacks "huge --threads: no range the next check contradicts" "0..1024"
run predict --threads 100000 --data d/train.csv x.ckpt
expect "huge predict --threads" 2 "more than"
run train --threads 99999999999 --data d/train.csv
expect "--threads past a long: the same reason" 2 "more than" "only make it slower"
run train --threads -1 --data d/train.csv
expect "--threads -1" 2 "not a number of threads" "0 for one per core"
lacks "--threads -1: no range the next check contradicts" "1048576"
run eval --threads +2 --data d/train.csv x.ckpt
expect "--threads +2 (digits only)" 2 "not a number of threads"
# a new run's learning rate and momentum follow its optimizer unless given
run train --data d/train.csv --epochs 1 --optim adam --schedule const --checkpoint ck_adam --quiet
expect "adam with the default rate" 0
check "adam's default rate is 0.001" [ "$(awk -F, 'NR == 2 { print $6 }' ck_adam/metrics.csv)" = 0.001 ]
run train --data d/train.csv --epochs 1 --optim rmsprop --schedule const --log rms.csv --quiet
expect "rmsprop with the default rate" 0
check "rmsprop's default rate is 0.01" [ "$(awk -F, 'NR == 2 { print $6 }' rms.csv)" = 0.01 ]
run train --data d/train.csv --epochs 1 --optim rmsprop --lr 0.003 --momentum 0.5 --schedule const --log rms2.csv --quiet
expect "rmsprop with a given rate and momentum" 0
check "a given rate wins over the optimizer's default" [ "$(awk -F, 'NR == 2 { print $6 }' rms2.csv)" = 0.003 ]
run train --resume ck_adam/last.safetensors --epochs 2 --quiet
expect "resuming an adam run keeps its rate" 0
check "the resumed epoch trains at adam's rate" [ "$(awk -F, 'NR == 3 { print $6 }' ck_adam/metrics.csv)" = 0.001 ]
run train --plot c.jpg --data d/train.csv
expect "a plot that is neither PNG nor SVG" 2 "written as .png or .svg"
run train --skip-bad=lots --data d/train.csv
expect "a bad --skip-bad limit" 2 "--skip-bad=lots"
run train --overwrite --data d/train.csv
expect "--overwrite without --checkpoint" 2 "--overwrite needs --checkpoint"

# refused before the first epoch
run train --data d/train.csv --epochs 1 --log /nonexistent/m.csv
expect "an unwritable --log" 1 "--log: /nonexistent/m.csv: the folder /nonexistent does not exist"
lacks "nothing was trained" "epoch 1/1"
run train --data d/train.csv --epochs 1 --plot /nonexistent/c.png
expect "an unwritable --plot" 1 "/nonexistent"
lacks "nothing was trained" "epoch 1/1"
touch afile
run train --data d/train.csv --epochs 1 --checkpoint afile/ck
expect "a checkpoint folder that cannot be made" 1 "afile/ck"
lacks "nothing was trained" "epoch 1/1"
run train --data d/test.csv --epochs 1
expect "unlabelled training data" 1 "has no labels"

# options that take effect
run train --data f --val-split 0 --epochs 1 --quiet
expect "--val-split 0 means no validation (even with a test split)" 0 "validation: none" "final training accuracy"
run train --data "$FASHION" --channels 3 --epochs 1
expect "--channels on IDX data is refused" 2 "--channels 3: idx data is 1-channel"
run train --data f --channels 1 --epochs 1 --quiet
expect "--channels 1 on a colour folder makes a grey model" 0 "images 1x16x16"
run train --data f --image-size 24x20 --epochs 1 --quiet
expect "--image-size resizes" 0 "images 3x24x20"
run train --data f --epochs 1 --quiet --class-names a,b,c,d,e,f
expect "--class-names" 0 "6 classes (a, b, c, d, e, f)"
run train --data f --epochs 1 --quiet --class-names a,b
expect "--class-names of the wrong count" 2 "--class-names gives 2 names, the data has 6 classes"
printf 'one\ntwo\nthree\nfour\nfive\nsix\n' >names.txt
run train --data f --epochs 1 --quiet --class-names names.txt
expect "--class-names from a file" 0 "6 classes (one, two, three, four, five, six)"
run train --data "$FASHION" --val-split 0.99 --epochs 1
expect "--val-split out of range" 2 "--val-split: '0.99'"
run data f --image-size 8x8
expect "loom data --image-size on a folder" 0 "image: 3 x 8 x 8" "converted from 3 x 16 x 16"
run data d/train.csv --image-size 8x8
expect "loom data --image-size on CSV is refused" 2 "--image-size: d/train.csv is csv data"
run data d/train.csv --split test
expect "loom data --split on data without splits" 2 "without train/test splits"
run data "$FASHION" --split test
expect "loom data --split test" 0 "split: test" "samples: 10000" "Ankle boot"

# words
run train --data d/train.csv --epochs 1 --threads 1 --quiet
expect "singular forms" 0 "1 thread," "1 loader thread" "over 1 epoch;" "(lenet5, 1 epoch,"
lacks "no '1 threads'" "1 threads"
lacks "no '1 epochs'" "1 epochs"

# one class, and classes without samples
mkdir -p one/only
cp f/seg_train/seg_train/forest/*.jpg one/only/
run train --data one --epochs 1
expect "one class is refused" 1 "a classifier needs at least two"
mk_idx stray-images stray-labels 0 1 2 3 4 5 6 7 8 9 0 1 11
run train --data stray-images --epochs 1 --val-split 0 --quiet
expect "a stray IDX label is warned about" 0 "label 11 in record 12" "no samples (10)" "1 of 12 classes have no training samples"

# progress lines when the output is not a terminal
run train --data d/train.csv --epochs 1 --batch 1 --progress 0.01
expect "progress lines while not on a terminal" 0 "  epoch 1/1: batch "
run make-folder --out f
expect "make-folder over a folder with images" 2 "exists and is not empty"

# a model + batch that cannot fit in this machine's memory: said before the first epoch, with both sizes
run train --data f --model resnet --image-size 4096x4096 --batch 1024 --epochs 1
expect "memory checked before the first epoch" 1 "GB (activations, gradients, scratch), more than this machine's"
lacks "before any epoch" "epoch 1/1"
run train --data f --model resnet --image-size 4096x4096 --batch 1000 --threads 2 --epochs 1
expect "the refusal names the batch asked for" 1 "a batch of 1000 on 2 threads" "more than this machine's"

# what a step with a NaN does: stop (the default) or skip; nothing else
run train --data d/train.csv --epochs 1 --on-nan maybe
expect "--on-nan takes stop or skip" 2 "--on-nan maybe: stop or skip"
run train --data d/train.csv --epochs 1 --on-nan skip --quiet
expect "--on-nan skip trains as usual when nothing is NaN" 0 "final"

# the scheduling switches in the environment: on, off, or refused (never read as either in silence)
export LOOM_TAILS=maybe
run train --data d/train.csv --epochs 1 --threads 2 --quiet
expect "LOOM_TAILS takes 0 or 1" 1 "LOOM_TAILS=maybe: give 1 (on, the default) or 0 (off)"
lacks "nothing trained" "final"
export LOOM_TAILS=off
run train --data d/train.csv --epochs 1 --threads 2 --batch 64 --quiet
expect "LOOM_TAILS=off trains" 0 "final"
unset LOOM_TAILS
export LOOM_EARLY_REDUCE=maybe
run train --data d/train.csv --epochs 1 --threads 2 --quiet
expect "LOOM_EARLY_REDUCE takes 0 or 1" 1 "LOOM_EARLY_REDUCE=maybe: give 1 (on, the default) or 0 (off)"
lacks "nothing trained" "final"
export LOOM_EARLY_REDUCE=0
run train --data d/train.csv --epochs 1 --threads 2 --quiet
expect "LOOM_EARLY_REDUCE=0 trains" 0 "final"
unset LOOM_EARLY_REDUCE
# loom's own 3x3 kernels: on, off, or refused, for any model (LeNet-5 has no 3x3 convolution, and
# the portable kernels none of oneDNN's) and before any data is read
run train --data d/train.csv --epochs 1 --checkpoint ckw --quiet
expect "a checkpoint to predict with" 0
for k in "" "LOOM_KERNELS=portable"; do
    export LOOM_WGRAD=maybe
    env $k "$LOOM" train --data d/train.csv --epochs 1 --quiet >"$T/.out" 2>"$T/.err"; rc=$?; out=$(cat "$T/.out"); err=$(cat "$T/.err")
    expect "LOOM_WGRAD takes loom or onednn ($k)" 1 "LOOM_WGRAD=maybe: give loom (its own kernel, the default) or onednn"
    lacks "nothing trained ($k)" "epoch 1"
    unset LOOM_WGRAD
    export LOOM_WINOGRAD=maybe
    env $k "$LOOM" predict ckw/best.safetensors --data d/test.csv --out /dev/null >"$T/.out" 2>"$T/.err"; rc=$?; out=$(cat "$T/.out"); err=$(cat "$T/.err")
    expect "LOOM_WINOGRAD takes 1 or 0 ($k)" 1 "LOOM_WINOGRAD=maybe: give 1 (on, the default) or 0 (off)"
    unset LOOM_WINOGRAD
done
B="bench --model minivgg --input 3x16x16 --classes 3 --batch 8 --threads 1 --steps 1 --warmup 0 --infer-steps 1"
LOOM_WGRAD=onednn run $B
expect "LOOM_WGRAD=onednn runs" 0 "infer img/s"
LOOM_WINOGRAD=off run $B
expect "LOOM_WINOGRAD=off runs" 0 "infer img/s"
# bench --layers says which layers run on them (where oneDNN runs AVX2 code: not on AVX-512 machines)
run $B --layers
if printf '%s' "$out" | grep -q "(onednn avx2)"; then
    expect "bench --layers names the own kernels" 0 "+loom dW" "3 of them by loom's Winograd F(2x2, 3x3)"
    LOOM_WGRAD=onednn LOOM_WINOGRAD=0 run $B --layers
    lacks "and not when they are off" "+loom dW"
    lacks "nor Winograd" "Winograd"
fi
finish
