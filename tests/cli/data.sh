# Data sets as users have them: the Kaggle Intel layout given by its top
# folder (seg_train, seg_test, seg_pred); IDX files whatever their names, with
# errors that name the real fault; unreadable images refused, or left out
# with --skip-bad within its limit, refused when a class would be empty.
. "$(dirname "$0")/lib.sh"

# the Intel layout from its top folder: train on seg_train, validate on seg_test, leave seg_pred
mk_folder intel 16 5
mkdir -p intel/seg_pred/seg_pred
cp intel/seg_test/seg_test/sea/0.jpg intel/seg_pred/seg_pred/1001.jpg
run data intel
expect "loom data on the top folder" 0 "intel/seg_train" "split: train" "samples: 30" "seg_pred holds unlabelled images"
run data intel --split test
expect "loom data --split test" 0 "intel/seg_test" "samples: 18"
run train --data intel --epochs 1 --quiet --checkpoint ck
expect "loom train on the top folder" 0 "30 training / 18 validation images" "validation: the test split of intel" "final test accuracy"
run predict ck/best.safetensors --data intel/seg_pred/seg_pred
expect "predict seg_pred" 0 "1001.jpg,"

# IDX files named any way: found by content; the real fault reported
mkdir idx
cp "$FASHION/t10k-images-idx3-ubyte.gz" idx/pictures.gz
cp "$FASHION/t10k-labels-idx1-ubyte.gz" idx/tags.gz
run data idx/pictures.gz
expect "an oddly named IDX pair is paired by content" 0 "format: idx" "samples: 10000"
run data idx/tags.gz
expect "a labels file given for images" 1 "a labels file (1 dimension, 10000 labels)"
cp "$FASHION/train-labels-idx1-ubyte.gz" idx/more-tags.gz
cp "$FASHION/t10k-labels-idx1-ubyte.gz" idx/same-tags.gz
run data idx/pictures.gz
expect "two labels files of the right count" 1 "2 IDX labels files with 10000 records"
printf 'garbage!' >idx/junk
run data idx/junk
expect "an unknown format" 1 "unknown data format" "first bytes"
printf '\x00\x00\x08\x03\x00\x00\x00\x05\x00\x00\x00\x02\x00\x00\x00\x02abc' >idx/short-images
run data idx/short-images
expect "a truncated IDX file" 1 "truncated: header claims 20 bytes of data (5 x 2 x 2), file has 3"
printf '\x00\x00\x0d\x03\x00\x00\x00\x05' >idx/floats
run data idx/floats
expect "an IDX file of floats" 1 "unsupported IDX element type 0x0d, float"
mkdir a b
mk_idx a/img a/lab 1 2 3
rm a/lab
mk_idx b/x b/y 1 2
mv b/y a/y
run data a/img
expect "no labels file of the right count" 1 "no labels file for these 3 images"

# unreadable images
mk_folder bad 16 6
for f in bad/seg_train/seg_train/forest/*.jpg; do echo junk >"$f"; done
echo junk >bad/seg_train/seg_train/sea/0.jpg
run train --data bad --epochs 1 --quiet
expect "an unreadable image stops training" 1 "bad/seg_train/seg_train/" "not a PNG or JPEG file"
run train --data bad --epochs 1 --quiet --skip-bad=50%
expect "--skip-bad refuses when a class would be empty" 1 "7 of 36 images" "forest 6 of 6" "every image of class forest (6) is unreadable"
lacks "before training" "epoch 1/1"
mk_folder some 16 20
echo junk >some/seg_train/seg_train/sea/0.jpg
echo junk >some/seg_train/seg_train/sea/1.jpg
run train --data some --epochs 1 --quiet --skip-bad
expect "--skip-bad's default limit is 1%" 1 "2 of 120 images (1.67%)" "more than --skip-bad allows (1%)"
run train --data some --epochs 1 --quiet --skip-bad=2%
expect "--skip-bad=2% leaves them out" 0 "sea 2 of 20" "118 training" "final test accuracy"
run data some
expect "loom data reports each bad record" 1 "bad record: some/seg_train/seg_train/sea/0.jpg" "2 bad"

# CSV
mk_csv d 50 10
printf 'label,pixel0,pixel1,pixel2,pixel3\n1,0,0,0,0\n2,0,300,0,0\n' >bad.csv
run data bad.csv
expect "a CSV pixel out of range" 1 "bad.csv line 3: pixel1 = 300 is out of range 0..255"
run train --data d/test.csv --epochs 1
expect "training on a CSV without labels" 1 "has no labels"
finish
