# What a new user's odd inputs found, kept fixed: outputs that would destroy
# inputs or devices, settings that cannot work, options that do not apply,
# divergence, and the words of the messages.
. "$(dirname "$0")/lib.sh"
mk_csv d 600 30
mk_folder f 16 6
run train --data d/train.csv --epochs 1 --checkpoint ck --quiet
expect "a model" 0

# a checkpoint damaged after it was written: a byte of its weights changed is refused, naming file and tensor
# flip FILE OFFSET: one byte of FILE changed in place
flip() {
    local byte
    byte=$(od -An -tu1 -j "$2" -N 1 "$1")
    printf "\\x$(printf %02x $((byte ^ 0x55)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
cp ck/best.safetensors dmg.safetensors
hl=$(od -An -tu8 -N 8 dmg.safetensors | tr -d ' ')
flip dmg.safetensors $((8 + hl + 5)) # the first tensor's second float
check "one byte of the copy changed" [ "$(cmp -l ck/best.safetensors dmg.safetensors | wc -l)" = 1 ]
run eval dmg.safetensors --data d/train.csv
expect "eval of a damaged checkpoint" 1 "dmg.safetensors: tensor" "do not match the CRC-32 saved with them" "the file is damaged"
run predict dmg.safetensors --data d/test.csv --out dmg.csv
expect "predict from a damaged checkpoint" 1 "do not match the CRC-32"
check "and no predictions written" [ ! -e dmg.csv ]
run summary dmg.safetensors
expect "summary of a damaged checkpoint" 1 "do not match the CRC-32"
run export dmg.safetensors --out dmg.onnx
expect "export of a damaged checkpoint" 1 "do not match the CRC-32"
check "and no ONNX written" [ ! -e dmg.onnx ]
# the optimizer's state, at the end of the file, is read by --resume
mkdir dmgrun
cp ck/last.safetensors dmgrun/last.safetensors
flip dmgrun/last.safetensors $(($(stat -c %s dmgrun/last.safetensors) - 5))
run train --resume dmgrun/last.safetensors --epochs 2 --lr 0.01
expect "--resume from a damaged checkpoint" 1 "last.safetensors: tensor" "do not match the CRC-32"

# outputs: special files are written through, links followed, inputs never overwritten
run predict ck/best.safetensors --data d/test.csv --out /dev/null
expect "predict --out /dev/null" 0 "wrote 30 predictions to /dev/null"
check "/dev/null is still a device" [ -c /dev/null ]
: >target.csv
ln -s target.csv link.csv
run predict ck/best.safetensors --data d/test.csv --out link.csv
expect "predict --out a link" 0
check "the link stays a link" [ -L link.csv ]
check "its target got the predictions" grep -q '^ImageId,Label$' target.csv
run predict ck/best.safetensors --data d/test.csv --out -
expect "--out - is standard output" 0 "ImageId,Label"
check "and no file named -" [ ! -e ./- ]
# warnings go to standard error, never into the data on standard output
cores=$(nproc)
run predict ck/best.safetensors --data d/test.csv --out - --threads $((cores + 1))
expect "--out - with more threads than cores" 0 "warning: --threads"
check "standard output is the CSV alone" [ "$(printf '%s\n' "$out" | head -1)" = "ImageId,Label" ]
check "with all 30 rows" [ "$(printf '%s\n' "$out" | wc -l)" = 31 ]
run predict ck/best.safetensors --data d/test.csv --out ck/best.safetensors
expect "predict over its checkpoint" 2 "--out ck/best.safetensors is ck/best.safetensors"
run predict ck/best.safetensors --data d/test.csv --out d/test.csv
expect "predict over its data" 2 "which this command also reads or writes"
run train --data d/train.csv --epochs 1 --log d/train.csv
expect "a log over the training data" 2 "--log d/train.csv is d/train.csv"
run train --data d/train.csv --epochs 1 --log a.png --plot a.png
expect "log and plot the same file" 2 "--plot a.png is a.png"
run train --data d/train.csv --epochs 1 --checkpoint ck2 --log ck2/last.safetensors
expect "a log over a checkpoint" 2 "--log ck2/last.safetensors is"
run train --data f --epochs 1 --checkpoint f/seg_train/ck
expect "a checkpoint folder inside the data" 2 "is inside f" "outputs and data would mix"
run train --data d/train.csv --epochs 1 --log ""
expect "an empty path" 2 "--log: an empty value"

# a resumed run keeps writing its log and plot
run train --data d/train.csv --epochs 2 --stop-after 1 --checkpoint lp --log lp.csv --plot lp.svg --quiet
expect "a run with --log and --plot, stopped" 0 "metrics: lp.csv" "curves: lp.svg"
run train --resume lp/last.safetensors --quiet
expect "resumed: the same log and plot" 0 "/lp.csv" "/lp.svg"
check "lp.csv holds both epochs" [ "$(grep -c '^[0-9]' lp.csv)" = 2 ]
check "no metrics.csv in the folder instead" [ ! -e lp/metrics.csv ]

# resuming from an earlier checkpoint says it rewinds
run train --data d/train.csv --epochs 3 --schedule const --checkpoint rw --quiet --lr 0.001
run train --resume rw/best.safetensors --epochs 3 --quiet
expect "resume from best" 0
run summary rw/last.safetensors
expect "last is still the run's" 0 "trained 3 of 3"

# settings that cannot work
run train --data d/train.csv --epochs 2 --schedule cosine:5
expect "a warm-up longer than the run" 2 "a warm-up of 5 epochs leaves nothing of a 2-epoch run"
run train --data d/train.csv --schedule multistep:3,1
expect "milestones out of order" 2 "milestones increasing"
run train --data d/train.csv --augment flip-h,flip-h
expect "the same transform twice" 2 "repeats an earlier item"
run train --data d/train.csv --augment crop=14
expect "a crop of half the image" 2 "leave little of 28x28 images"
run train --data d/train.csv --optim adam --momentum 0.5
expect "--momentum with adam" 2 "--momentum applies to --optim sgd and rmsprop"
run train --data d/train.csv --lr 0x10
expect "a hexadecimal number" 2 "--lr: '0x10' is not a number"
run train --data d/train.csv --class-names /nonexistent
expect "--class-names of a missing file" 2 "not a file that can be read" "nor a comma-separated list"
run train --data d/train.csv --class-names a,b,c,d,e,f,g,h,i,a
expect "--class-names twice the same" 2 "\"a\" names classes 0 and 9"
run train --data d/train.csv --image-size 4x4
expect "an image size too small for the model" 2 "too small" "a larger --image-size"
run train --data d/train.csv --epochs 1 --lr 100 --schedule const --quiet
expect "divergence stops training" 1 "training has diverged (lower the learning rate, now 100"

# --class-names are shown, the data's own names still check
run train --data d/train.csv --epochs 1 --checkpoint cn --quiet --class-names zero,one,two,three,four,five,six,seven,eight,nine
expect "train with --class-names" 0 "10 classes (zero, one, two"
run eval cn/best.safetensors --data d/train.csv
expect "eval on its own data with the given names" 0 "zero" "nine"

# eval and predict: --skip-bad, the threads ceiling, the Intel layout's seg_pred
run train --data f --epochs 1 --checkpoint fk --quiet
echo junk >f/seg_test/seg_test/sea/0.jpg
run eval fk/best.safetensors --data f
expect "eval stops at an unreadable image" 1 "not a PNG or JPEG file"
run eval fk/best.safetensors --data f --skip-bad
expect "eval --skip-bad" 0 "1 unreadable image left out" "17 samples"
mk_folder fv 16 2
for img in fv/seg_test/seg_test/sea/*.jpg; do echo junk >"$img"; done
run train --data fv --epochs 1 --skip-bad --quiet
expect "train --skip-bad: a class the validation data lost" 1 "validation data: every image of class sea (3) is unreadable: validation would have none of this class to score"
run predict fk/best.safetensors --data f/seg_test --skip-bad --out pk.csv
expect "predict --skip-bad counts the rows it wrote" 0 "wrote 17 predictions to pk.csv (1 unreadable left out)"
check "predict --skip-bad: 17 rows and a header" test "$(wc -l <pk.csv)" -eq 18
run eval fk/best.safetensors --data f --threads 1000
expect "eval --threads 1000" 2 "only make it slower"
mkdir -p f/seg_pred/seg_pred
cp f/seg_test/seg_test/forest/0.jpg f/seg_pred/seg_pred/77.jpg
run predict fk/best.safetensors --data f
expect "predict on the top folder predicts seg_pred" 0 "predicting f/seg_pred" "77.jpg,"
run data f/seg_pred
expect "seg_pred is unlabelled images" 0 "format: images" "labels: no"

# bench: classes must fit the data, errors are errors
run bench --data d/train.csv --threads 1 --steps 2 --classes 6
expect "bench: --classes against the data" 2 "d/train.csv has 10 classes"
mk_folder fb 16 2
echo junk >fb/seg_train/seg_train/sea/1.jpg
run bench --data fb --threads 1 --steps 2 --warmup 1
expect "bench: an unreadable image is an error, not a figure" 1 "not a PNG or JPEG file"
lacks "no table" "train img/s"
run bench --data d/train.csv --threads 1 --steps 2 --warmup 0
expect "bench takes the data's shape" 0 "input 1x28x28" "from d/train.csv"

# summary, make-folder, make-csv, help
run summary lenet5 --input 1x99999x99999
expect "summary of an absurd input" 2 "sides up to 4096"
run summary nope
expect "summary of an unknown model" 2 "no model 'nope' in the zoo"
run summary --list
expect "the zoo says what vgg16 is" 0 "not the 138M model"
run summary f/seg_test/seg_test/forest/0.jpg
expect "an image given as a checkpoint" 1 "this is a JPEG image, not a checkpoint"
run make-folder --out g --train 0
expect "make-folder with no images" 2 "--train: '0' is not a whole number in 1..1000000"
mkdir few
mk_idx few/train-images-idx3-ubyte few/train-labels-idx1-ubyte 0 1 2 3 4 5 6 7 8 9 0 1
mk_idx few/t10k-images-idx3-ubyte few/t10k-labels-idx1-ubyte 0 1 2 3 4 5 6 7 8 9
run make-folder --out g --from few --train 2 --test 1 --size 8
expect "make-folder asks for more than there is" 0 "wrote 22" "note:" "fewer images than asked for" "(as few as 1)"
run make-csv --out d
expect "make-csv over existing files" 2 "d/train.csv exists"
run help train
expect "help train" 0 "usage: loom train"
run help bogus
expect "help of no command" 2 "no command 'bogus'"

# a second trial's findings
run train --data d/train.csv --epochs 1 --checkpoint cl --quiet --class-names a,b,c,d,e,f,g,h,i,j
mkdir -p named
k=0
for c in a b c d e f g h i j; do mkdir -p named/$c; cp f/seg_train/seg_train/sea/0.jpg named/$c/0.jpg; done
run eval cl/best.safetensors --data named --resize
expect "a folder named as --class-names said fits the model" 0 "accuracy:"
mkdir -p "bad/caf$(printf '\xe9')" bad/ok
cp f/seg_train/seg_train/sea/*.jpg "bad/caf$(printf '\xe9')/"
cp f/seg_train/seg_train/forest/*.jpg bad/ok/
run train --data bad --epochs 1 --checkpoint nb --quiet --val-split 0.5
expect "a class name that is not UTF-8 is refused before training" 1 "not UTF-8 text"
lacks "before any epoch" "epoch 1/1"
mk_folder mv 16 6
run train --data mv --epochs 2 --stop-after 1 --checkpoint mvk --quiet
mv mv/seg_train/seg_train/forest/0.jpg mv/seg_train/seg_train/sea/99.jpg
run train --resume mvk/last.safetensors
expect "a resume on data whose labels changed" 2 "its labels differ"
cp f/seg_train/seg_train/sea/0.jpg mv/seg_train/seg_train/stray.jpg
run data mv/seg_train/seg_train
expect "an image beside class folders is left out, with a warning" 0 "format: folder" "belong to no class"
mk_folder mixed 16 4
"$LOOM" make-folder --out big --size 20 --train 1 --test 1 >/dev/null
cp big/seg_train/seg_train/sea/0.jpg mixed/seg_train/seg_train/sea/zz.jpg
run train --data mixed --epochs 1 --quiet
expect "an image of another size is an error, not a silent resize" 1 "zz.jpg is 20x20, unlike the first image"
run train --data mixed --epochs 1 --quiet --image-size 16x16
expect "--image-size resizes them alike" 0 "final test accuracy"
run train --data d/train.csv --val d/train.csv --epochs 1
expect "--val that is the training data" 2 "is the training data itself"
run train --data d/train.csv --epochs 1 --log -
expect "--log -" 2 "it is rewritten every epoch"
run bench --data d/train.csv --producers 2,1 --steps 1
expect "bench: a producer list without --pipeline" 2 "a list is for --pipeline"
run summary lenet5 --input 1x4x4
expect "summary: an input too small for the model" 2 "too small"
run train --data d/train.csv --epochs 1 --schedule plateau:1:0.5 --quiet
expect "plateau's patience in words" 0 "once 2 epochs in a row bring no progress"
echo junk >f/seg_test/seg_test/sea/3.jpg
run predict fk/best.safetensors --data f/seg_test/seg_test/sea
expect "predict fails on a bad image" 1 "not a PNG or JPEG file"
lacks "and prints no half table" "file,class,probability"

# words
run train --data d/train.csv --epochs 2 --schedule cosine:1 --quiet
expect "a warm-up epoch, and the rate over the epoch" 0 "1 warm-up epoch;" "lr 0 to 0.05"
finish
