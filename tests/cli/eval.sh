# loom eval and loom predict check the data against what the model was
# trained on — class count, class names, channels, image size — and refuse a
# mismatch instead of reporting a number; --resize allows the conversion;
# predictions are CSV with a header; the confusion matrix labels its columns.
. "$(dirname "$0")/lib.sh"
mk_folder f6 16 6
"$LOOM" make-folder --out f10 --from "$FASHION" --size 16 --train 2 --test 2 >/dev/null || exit 2
mk_csv d 600 30
run train --data f6 --epochs 1 --checkpoint m6 --quiet
expect "a 6-class model" 0
run train --data d/train.csv --epochs 1 --checkpoint md --quiet
expect "a digits model (grey 28x28)" 0

run eval m6/best.safetensors --data f10
expect "6-class model on 10-class data is refused" 1 "f10 has 10 classes" "the model (m6/best.safetensors) has 6 classes (buildings, forest"
cp -r f6 f6x
mv f6x/seg_test/seg_test/buildings f6x/seg_test/seg_test/houses
run eval m6/best.safetensors --data f6x
expect "classes named differently are refused" 1 "class 0 is \"forest\", the model (m6/best.safetensors) has \"buildings\" there"
run eval m6/best.safetensors --data f6
expect "eval on its own data (the test split)" 0 "on f6/seg_test: 18 samples" "accuracy:" "predicted class, by number" "   class"
run eval m6/best.safetensors --data f6 --split train
expect "--split train" 0 "on f6/seg_train: 36 samples"
run eval m6/best.safetensors --data f6 --split bogus
expect "--split bogus is refused" 2 "'bogus' is not a split"
run eval md/best.safetensors --data d/train.csv --split test
expect "--split on data without splits is refused" 2 "has no train/test splits"
run eval md/best.safetensors
expect "eval without --data is refused" 2 "--data PATH is required"
run eval md/best.safetensors --data d/test.csv
expect "eval on unlabelled data is refused" 1 "has no labels"

# the same classes at another size or in grey
"$LOOM" make-folder --out f6big --size 24 --train 2 --test 2 >/dev/null || exit 2
run eval m6/best.safetensors --data f6big
expect "another image size is refused" 1 "holds 24x24 images, the model (m6/best.safetensors) was trained on 16x16 images" "--resize"
run eval m6/best.safetensors --data f6big --resize
expect "--resize allows it" 0 "accuracy:"
# colour images of the digits model's classes ("0".."9"), 28x28: only the channels differ
"$LOOM" make-folder --out c28 --from "$FASHION" --size 28 --train 1 --test 1 >/dev/null || exit 2
mkdir digits
k=0
for c in c28/seg_test/seg_test/*; do mv "$c" "digits/$k"; k=$((k + 1)); done
run eval md/best.safetensors --data digits
expect "a grey model on colour images is refused" 1 "holds colour images, the model (md/best.safetensors) was trained on grey images" "--resize"
run eval md/best.safetensors --data digits --resize
expect "--resize converts them" 0 "accuracy:"
# a model trained grey (--channels 1) from colour images takes grey images as they are
"$LOOM" make-folder --out g28 --from "$FASHION" --size 28 --train 2 --test 1 >/dev/null || exit 2
run train --data g28 --channels 1 --epochs 1 --checkpoint mg --quiet
expect "a grey model from colour images" 0
run eval mg/best.safetensors --data d/train.csv
expect "grey images for a model trained with --channels 1 need no conversion" 0 "accuracy:"
run eval mg/best.safetensors --data g28
expect "and colour ones are converted as in training" 0 "accuracy:"

# predict: CSV with a header, the Kaggle submission
run predict m6/best.safetensors --data f6/seg_test/seg_test/forest
expect "predict a folder of images" 0 "file,class,probability" "f6/seg_test/seg_test/forest/0.jpg,"
run predict m6/best.safetensors --data f6/seg_test/seg_test/forest --out p.csv
expect "predict --out" 0 "wrote 3 predictions to p.csv"
check "p.csv has a header and 3 rows" [ "$(head -1 p.csv)" = "file,class,probability" -a "$(wc -l <p.csv)" = 4 ]
run predict md/best.safetensors --data d/test.csv --out sub.csv
expect "a Kaggle submission" 0 "wrote 30 predictions to sub.csv"
check "submission format" [ "$(head -1 sub.csv)" = "ImageId,Label" -a "$(sed -n 2p sub.csv | cut -d, -f1)" = 1 -a "$(wc -l <sub.csv)" = 31 ]
run predict m6/best.safetensors --data f6big/seg_test/seg_test/sea
expect "predict on another size needs --resize" 1 "--resize"
run predict m6/best.safetensors --data f6/seg_test/seg_test/sea --out /nonexistent/p.csv
expect "an unwritable --out is refused before any work" 1 "/nonexistent"
run predict m6/best.safetensors
expect "predict without --data" 2 "--data PATH is required"
run predict
expect "predict without a checkpoint" 2 "a CHECKPOINT file is required"
finish
