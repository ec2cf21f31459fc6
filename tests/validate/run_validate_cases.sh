#!/usr/bin/env bash
# Runs the real `weir validate` over every broken config in this folder.
# Each NAME.json has a NAME.expect: one line per expected error,
# "POINTER HINT-FRAGMENT" ("-" for an error without pointer). The test fails
# unless weir exits 2 and prints, for every line, an error
# "FILE: POINTER: ... (hint: ...HINT-FRAGMENT...)".
# It also checks the exit codes for a valid config (0) and an unreadable file (1).
set -euo pipefail
weir="$1"
cases="$2"
valid="$3"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

count=0
for config in "$cases"/*.json; do
  count=$((count + 1))
  expect="${config%.json}.expect"
  [[ -f "$expect" ]] || { fail "$config has no $(basename "$expect")"; continue; }
  rc=0
  stderr="$("$weir" validate "$config" 2>&1 >/dev/null)" || rc=$?
  [[ $rc -eq 2 ]] || fail "$(basename "$config"): exit $rc, want 2"
  # The error list is the report: on stdout as well as on stderr.
  stdout="$("$weir" validate "$config" 2>/dev/null)" || true
  [[ "$stdout" == "$stderr" ]] || fail "$(basename "$config"): stdout and stderr differ:
--- stdout
$stdout
--- stderr
$stderr"
  while IFS= read -r line || [[ -n "$line" ]]; do
    [[ -z "$line" ]] && continue
    pointer="${line%% *}"
    fragment="${line#* }"
    if [[ "$pointer" == "-" ]]; then prefix="$config: "; else prefix="$config: $pointer: "; fi
    found=0
    while IFS= read -r err; do
      [[ "$err" == "$prefix"* ]] || continue
      [[ "$pointer" == "-" && "${err#"$prefix"}" == /* ]] && continue
      hint="${err#*(hint: }"
      [[ "$hint" != "$err" && "$hint" == *"$fragment"* ]] && found=1
    done <<< "$stderr"
    [[ $found -eq 1 ]] || fail "$(basename "$config"): no error at '$pointer' with hint '$fragment'; got:
$stderr"
  done < "$expect"
done
[[ $count -ge 10 ]] || fail "only $count broken configs"

rc=0
out="$("$weir" validate "$valid")" || rc=$?
[[ $rc -eq 0 ]] || fail "valid $valid: exit $rc, want 0"
[[ "$out" == *"valid"* && "$out" == *"memory budget: "* ]] || fail "no summary: $out"

rc=0
err="$("$weir" validate "$valid" --memory 1MB 2>&1 >/dev/null)" || rc=$?
[[ $rc -eq 0 && "$err" == *"warning: the memory budget"*"exceeds --memory 1.0MB"* ]] ||
  fail "--memory 1MB: exit $rc, want 0 and a warning; got: $err"
rc=0
err="$("$weir" validate "$valid" --memory 4GB 2>&1 >/dev/null)" || rc=$?
[[ $rc -eq 0 && -z "$err" ]] || fail "--memory 4GB: exit $rc, want 0 and no warning; got: $err"

rc=0
"$weir" validate "$cases/does-not-exist.json" 2>/dev/null || rc=$?
[[ $rc -eq 1 ]] || fail "missing file: exit $rc, want 1"

# --db on a file that does not exist yet: a fresh start (every pipeline new), nothing created.
rc=0
fresh="$(mktemp -d)/fresh.db"
out="$("$weir" validate "$valid" --db "$fresh")" || rc=$?
[[ $rc -eq 0 && "$out" == *"does not exist yet"* && "$out" == *": new (starts empty, ids "* &&
   ! -e "$fresh" ]] || fail "--db on a missing file: exit $rc, want 0, every pipeline new and no file; got: $out"
rmdir "$(dirname "$fresh")"

echo "$count broken configs checked, $failures failure(s)"
[[ $failures -eq 0 ]]
