# loom bench and loom summary: figures printed, CSV form, options that do not
# apply refused; summary of a zoo model and of a checkpoint.
. "$(dirname "$0")/lib.sh"
run bench --model lenet5 --threads 1,2 --steps 2 --warmup 1
expect "bench: thread scaling table" 0 "train img/s" "speedup" "infer img/s"
run bench --model lenet5 --threads 1 --steps 2 --warmup 0 --csv
expect "bench --csv" 0 "threads,images_per_s,speedup"
check "bench --csv: a header and one row" [ "$(printf '%s\n' "$out" | wc -l)" = 2 ]
run bench --threads 1,x
expect "bench: a bad thread list" 2 "--threads: '1,x' is not a list"
run bench --producers 2
expect "bench: --producers without --data" 2 "--producers needs --data"
run bench --batches 3
expect "bench: --batches without --pipeline" 2 "--batches needs --pipeline"
run bench --pipeline
expect "bench: --pipeline without --data" 2 "--pipeline needs --data"
mk_folder f 16 4
run bench --pipeline --data f --input 3x16x16 --producers 1 --model minivgg
expect "bench: --model with --pipeline" 2 "--model does not apply to --pipeline"
run bench --pipeline --data f --input 3x16x16 --producers 1,2 --batch 8
expect "bench --pipeline" 0 "producers 1" "producers 2" "cached"
run bench --model nosuch --steps 1
expect "bench: an unknown model" 2 "nosuch"

run summary minivgg --input 3x64x64 --classes 6
expect "summary of a zoo model" 0 "Total params" "minivgg"
run summary --list
expect "summary --list" 0 "lenet5" "minivgg" "resnet"
run summary lenet5 --input 3x
expect "summary: a bad --input" 2 "--input: '3x' is not CxHxW"
mk_csv d 200 10
run train --data d/train.csv --epochs 1 --checkpoint ck --quiet
run summary ck/last.safetensors
expect "summary of a checkpoint" 0 "trained 1 of 1 epochs" "trained on" "weights digest:" "Total params"
run summary ck/last.safetensors --classes 3
expect "summary: --classes with a checkpoint" 2 "describe a zoo model"
run summary nosuch.safetensors
expect "summary of a missing checkpoint" 1 "nosuch.safetensors: cannot open"
head -c 100 ck/last.safetensors >cut.safetensors
run summary cut.safetensors
expect "summary of a truncated checkpoint" 1 "cut.safetensors" "exceeds"

# the kernels: per-layer times name what ran each layer; LOOM_KERNELS chooses or is refused
run bench --model lenet5 --threads 1 --steps 1 --warmup 1 --layers
expect "bench --layers" 0 "per layer" "conv2d_1" "dense_1" "total" "GFLOP/s over the layers' time"
LOOM_KERNELS=portable run bench --model lenet5 --threads 1 --steps 1 --warmup 1 --layers
expect "LOOM_KERNELS=portable" 0 "(portable)"
check "LOOM_KERNELS=portable runs conv2d_1 on the portable kernels" grep -q '^conv2d_1 .* portable ' "$T/.out"
LOOM_KERNELS=bogus run bench --model lenet5 --threads 1 --steps 1
expect "LOOM_KERNELS=bogus is refused" 1 "LOOM_KERNELS=bogus: not portable, onednn or auto"
LOOM_KERNELS=bogus run train --data d/train.csv --epochs 1 --quiet
expect "LOOM_KERNELS=bogus is refused by train too" 1 "LOOM_KERNELS=bogus"
finish
