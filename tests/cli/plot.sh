# --plot draws the curves without any external program, PNG or SVG by the
# name, with or without --log, and says so only when the file was written.
. "$(dirname "$0")/lib.sh"
mk_csv d 300 10
run train --data d/train.csv --epochs 2 --plot c.png --quiet
expect "a PNG without --log" 0 "curves: c.png"
check "c.png is a PNG" [ "$(head -c 8 c.png | od -An -c | tr -d ' ')" = "211PNG\r\n032\n" ]
run train --data d/train.csv --epochs 2 --plot c.svg --val-split 0 --quiet
expect "an SVG without validation" 0 "curves: c.svg"
check "c.svg is SVG" grep -q '<svg' c.svg
check "no temporaries remain" [ -z "$(ls | grep tmp)" ]
run train --data d/train.csv --epochs 1 --plot c.gif
expect "another image type is refused" 2 "written as .png or .svg"
check "and no file was claimed or written" [ ! -e c.gif ]
mkdir -p ro
run train --data d/train.csv --epochs 1 --plot ro/missing/c.png
expect "a plot in a missing folder is refused before training" 1 "does not exist"
lacks "no curves claimed" "curves:"
run train --data d/train.csv --epochs 1 --plot ro --quiet
expect "a plot named like a folder" 2 "written as .png or .svg"
finish
