#!/usr/bin/env bash
# Checks scripts/tally.sh, the counting behind test.sh's closing line: skips
# are reported, a skip under CI=true is a failure, and a non-zero exit of
# `meson test` is never ignored.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../../scripts/tally.sh"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
nfail=0
expect() {   # expect WHAT WANT GOT
    if [ "$2" != "$3" ]; then echo "FAIL: $1: want '$2', got '$3'"; nfail=$((nfail + 1));
    else echo "ok: $1"; fi
}
mklog() {   # mklog FILE RESULT...
    local f=$1; shift; : >"$f"
    for r in "$@"; do printf '{"name": "t", "result": "%s"}\n' "$r" >>"$f"; done
}
mklog "$work/mixed.json" OK OK SKIP FAIL TIMEOUT
mklog "$work/ok.json" OK OK
mklog "$work/skip.json" OK SKIP SKIP

tally_init; CI= tally_add "$work/mixed.json" 1 2>/dev/null
expect "mixed, not CI" "tests: 2 passed, 2 failed, 1 skipped" "$(tally_line)"

tally_init; CI= tally_add "$work/skip.json" 0 2>/dev/null
expect "skips reported outside CI" "tests: 1 passed, 0 failed, 2 skipped" "$(tally_line)"
tally_ok; expect "skips outside CI are not failures" 0 $?

tally_init; CI=true tally_add "$work/skip.json" 0 2>/dev/null
expect "skips under CI" "tests: 1 passed, 2 failed, 2 skipped" "$(tally_line)"
tally_ok; expect "skips under CI fail the run" 1 $?

tally_init; CI= tally_add "$work/ok.json" 1 2>/dev/null
expect "non-zero exit with all OK" "tests: 2 passed, 1 failed, 0 skipped" "$(tally_line)"

tally_init; CI= tally_add "$work/missing.json" 0 2>/dev/null
expect "no log at all" "tests: 0 passed, 1 failed, 0 skipped" "$(tally_line)"

tally_init; CI= tally_add "$work/ok.json" 0; CI= tally_add "$work/mixed.json" 1 2>/dev/null
expect "two runs add up" "tests: 4 passed, 2 failed, 1 skipped" "$(tally_line)"

tally_init; tally_one fuzz 0; tally_one fuzz 3 2>/dev/null
expect "checks outside meson" "tests: 1 passed, 1 failed, 0 skipped" "$(tally_line)"

[ "$nfail" -eq 0 ] || exit 1
echo "all tally checks passed"
