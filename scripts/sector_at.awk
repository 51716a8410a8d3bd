#!/usr/bin/awk -f
# From `daxguard io DEV:/file -c fiemap` output, the device sector holding
# file sector `at` (awk -v at=N). Lines: " 2: [24..2047]: 84064..86087".
$1 ~ /^[0-9]+:$/ {
  gsub(/[\[\]:]/, "", $2)
  split($2, file, /\.\./)
  split($3, dev, /\.\./)
  if (at >= file[1] && at <= file[2]) { print dev[1] + (at - file[1]); exit }
}
