#!/usr/bin/env bash
# The README's two commands must not share a build folder (a demo build
# configured without tests once made the test command run none), and every
# ctest call must fail when it finds no test.
set -euo pipefail
root=$1
fail() { echo "scripts_test: $*"; exit 1; }
dirs_of() { grep -oE 'build\.sh +[A-Za-z0-9_-]+|run "[^"]*" +[A-Za-z0-9_-]+' "$1" | awk '{print $NF}'; }
demo=$(dirs_of "$root/scripts/demo.sh")
tests=$(dirs_of "$root/scripts/test.sh")
[ -n "$demo" ] && [ -n "$tests" ] || fail "no build folders found in demo.sh/test.sh"
for d in $demo; do
  if grep -qx "$d" <<<"$tests"; then fail "demo.sh and test.sh share build folder $d"; fi
done
while IFS= read -r line; do
  [[ $line == *--no-tests=error* ]] || fail "ctest without --no-tests=error: $line"
done < <(grep -hE '^\s*ctest ' "$root"/scripts/*.sh "$root"/.ci/run || true)
while IFS= read -r line; do
  [[ $line == *-DDAXGUARD_TESTS=ON* ]] || fail "a test build that does not ask for tests: $line"
done < <(grep -hE '^(run |scripts/build\.sh )' "$root/scripts/test.sh")
echo "scripts_test: ok"
