#!/usr/bin/env bash
# fuzz.sh [-t SECONDS] [HARNESS...]: builds the libFuzzer harnesses (fuzz/,
# clang with ASan+UBSan, folder build-fuzz), replays every input kept in
# fuzz/regressions/<harness>/, then fuzzes each harness for SECONDS (default
# 40) from its seeds in fuzz/corpus/<harness>/. Prints per harness the
# executions, executions per second and whether it crashed; exits 1 if any
# harness crashed (or leaked, or timed out) on a regression input or while
# fuzzing. New corpus entries and crashing inputs go to fuzz-out/ (not
# committed): a crash's input is named on its line, to keep in
# fuzz/regressions/<harness>/ once fixed.
# fuzz.sh --seeds: rewrites the binary seed corpora from fresh images.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=40
seeds=0
while (($#)); do
  case $1 in
    -t) secs=$2; shift 2 ;;
    --seeds) seeds=1; shift ;;
    *) break ;;
  esac
done
scripts/setup.sh
scripts/build.sh build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DDAXGUARD_FUZZ=ON -DDAXGUARD_TESTS=OFF \
  -DDAXGUARD_BENCH=OFF -DDAXGUARD_SANITIZE=address,undefined
if ((seeds)); then
  build-fuzz/fuzz/make_seeds fuzz/corpus
  exit 0
fi
harnesses=("$@")
if ((${#harnesses[@]} == 0)); then
  harnesses=(units io_cmd dm_table stack_file device_file ops_codec fs_image fs_log)
fi

# Where it stopped and what it was given, so that a crash or hang seen only
# in CI can be replayed: the first frames of the stack and the input.
report_crash() {  # report_crash LOG ARTIFACT
  grep -E '^ +#[0-9]+ ' "$1" | grep -vE 'libFuzzer|fuzzer::|__sanitizer|libc\.so|libc_start' | head -14 |
    sed -E 's/^ */      /; s/ \(BuildId: [0-9a-f]+\)//; s/0x[0-9a-f]+ in //' || true
  if [ -n "$2" ] && [ -f "$2" ] && (($(stat -c %s "$2") <= 16384)); then
    echo "    input, base64 (replay: base64 -d > f; $bin f):"
    base64 -w 100 "$2" | sed 's/^/      /'
  fi
}

out=fuzz-out
failed=0
for h in "${harnesses[@]}"; do
  bin=build-fuzz/fuzz/${h}_fuzzer
  [ -x "$bin" ] || { echo "fuzz $h: no harness $bin"; failed=$((failed + 1)); continue; }
  mkdir -p "$out/corpus/$h" "$out/crashes/$h"
  log=$out/$h.log
  # Every kept regression input, once each.
  if compgen -G "fuzz/regressions/$h/*" >/dev/null; then
    n=$(find "fuzz/regressions/$h" -type f | wc -l)
    if "$bin" -timeout=60 -rss_limit_mb=4096 fuzz/regressions/"$h"/* >"$out/$h.regressions.log" 2>&1; then
      echo "fuzz $h: $n regression inputs, none crashed"
    else
      echo "fuzz $h: a regression input crashed (see $out/$h.regressions.log)"
      grep -E '^(==[0-9]+==ERROR|SUMMARY|Running: |fuzz check failed)' "$out/$h.regressions.log" | tail -4 | sed 's/^/    /'
      failed=$((failed + 1))
    fi
  fi
  status=ok
  "$bin" -max_total_time="$secs" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$out/crashes/$h/" "$out/corpus/$h" "fuzz/corpus/$h" >"$log" 2>&1 || status=crashed
  runs=$(grep -oE '^stat::number_of_executed_units: +[0-9]+' "$log" | awk '{print $2}' || true)
  rate=$(grep -oE '^stat::average_exec_per_sec: +[0-9]+' "$log" | awk '{print $2}' || true)
  if [ -z "$runs" ]; then  # stopped before its final stats: the last progress line
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    runs=$(sed -E 's/^#([0-9]+).*/\1/' <<<"$last")
    rate=$(grep -oE 'exec/s: [0-9]+' <<<"$last" | awk '{print $2}' || true)
  fi
  line="fuzz $h: ${runs:-0} executions, ${rate:-0} exec/s in ${secs} s"
  if [ "$status" = ok ]; then
    echo "$line, no crash"
  else
    artifact=$(grep -oE "Test unit written to [^ ]+" "$log" | tail -1 | awk '{print $NF}' || true)
    echo "$line, CRASHED: ${artifact:-see $log}"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz check failed|ALARM)' "$log" | tail -3 | sed 's/^/    /'
    report_crash "$log" "$artifact"
    failed=$((failed + 1))
  fi
done
echo "fuzz: ${#harnesses[@]} harnesses, $failed crashed"
((failed == 0))
