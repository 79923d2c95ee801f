# A checkpoint folder on a full disk (a small tmpfs, mounted when this test
# may; else it reports itself skipped): a run that cannot fit its
# checkpoints is refused before the first epoch, saying how much it needs;
# a disk that fills up during training gives a clear error (exit 1), keeps
# the previous checkpoint whole, leaves no temporaries, and that checkpoint
# resumes once there is room.
. "$(dirname "$0")/lib.sh"
mkdir -p small big
mount -t tmpfs -o size=700k tmpfs small 2>/dev/null || skip "cannot mount a tmpfs here (not root, or in a container without CAP_SYS_ADMIN)"
trap 'umount "$T/small" "$T/big" 2>/dev/null; rm -rf "$T"' EXIT
mk_csv d 400 10

# a lenet5 checkpoint with its momentum is ~0.5 MB: last, best and their next copies need ~2 MB
run train --data d/train.csv --epochs 2 --checkpoint small/ck --quiet
expect "too little room: refused before the first epoch" 1 "MB free, and a checkpoint of this model takes" "free some space"
lacks "nothing trained" "epoch 1/"
check "nothing written" [ ! -e small/ck/last.safetensors ]

# room for the start only: a filler takes the rest once epoch 1's checkpoint is in
mount -t tmpfs -o size=2200k tmpfs big || skip "cannot mount a second tmpfs"
"$LOOM" train --data d/train.csv --epochs 40 --checkpoint big/ck --quiet >run.out 2>&1 &
pid=$!
for _ in $(seq 600); do [ -e big/ck/last.safetensors ] && break; sleep 0.05; done
head -c 2000000 /dev/zero >big/filler 2>/dev/null
wait $pid
rc=$?
out=$(cat run.out)
err=""
expect "the disk fills up: a clear error" 1 "No space left on device"
check "no temporaries left" [ -z "$(ls big/ck | grep -e '\.next\.' -e '\.tmp\.')" ]
rm -f big/filler
run summary big/ck/last.safetensors
expect "the previous checkpoint is whole" 0 "epoch"
# one epoch more than the checkpoint has (the filler may come after epoch 1 or a later one)
done_epochs=$(printf '%s\n' "$out" | sed -n 's/.*trained \([0-9]*\) of .*/\1/p' | head -n 1)
check "the checkpoint says its epoch" [ -n "$done_epochs" ]
run train --resume big/ck/last.safetensors --epochs $((done_epochs + 1)) --quiet
expect "and it resumes once there is room" 0
finish
