#!/usr/bin/env bash
# members.sh -- membership of the cssds (issue #9, first piece;
# docs/cluster.md "Membership"): a locus-cssd on every site, heartbeats,
# suspicion confirmed by polling, epochs agreed per partition.  Three sites
# of a dev cluster on addresses of their own (127.0.78.k: nftables cuts are
# machine-wide), real daemons, real nftables rules, real kill -9.
#  1. dev up: every site runs a locus-cssd; the three views agree on one
#     epoch with members {1,2,3} (locusctl sites --site K --json).
#  2. a cut shorter than the suspicion (one lost heartbeat or so): no
#     membership change, no peer ever left "up".
#  3. dev partition 1,2/3: sites 1 and 2 agree on {1,2}, site 3 on {3},
#     both with a new, higher epoch; their views hold the other side down.
#  4. dev heal: one partition {1,2,3}, its epoch above both sides'.
#  5. kill -9 of site 2's cssd: sites 1 and 3 agree on {1,3}.
#  6. dev up restarts it: {1,2,3} again; its epochs only grew (members.json).
# Measured, logged, never asserted: seconds from the cut to each side's new
# epoch, and from the heal to the merged epoch.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init members
A1=127.0.78.1 A2=127.0.78.2 A3=127.0.78.3

command -v nft >/dev/null || fail "nft is not installed (package nftables, scripts/deps.sh)"
nft list tables >/dev/null 2>&1 || skip "nftables is not usable here (no CAP_NET_ADMIN?)"

# view K: site K's membership view (JSON), asked from site K's address.
view() { "$LOCUSCTL" sites --site "$1" --json --state "$STATE" 2>/dev/null; }
# epoch_of JSON / members_of JSON: the view's epoch and members ("1,2,3").
# (bash's first match: the view's own keys come before its sites')
epoch_of() { [[ $1 =~ \"epoch\":([0-9]+) ]] && echo "${BASH_REMATCH[1]}"; }
members_of() { [[ $1 =~ \"members\":\[([0-9,]*)\] ]] && echo "${BASH_REMATCH[1]}"; }
# num_of JSON KEY: the first number of KEY
num_of() { [[ $1 =~ \"$2\":([0-9]+) ]] && echo "${BASH_REMATCH[1]}"; }
# agree MEMBERS K...: sites K... see the same epoch with these members;
# the epoch goes to $AGREED.
agree() {
    local want=$1 k v e= ek
    shift
    for k in "$@"; do
        v=$(view "$k") || return 1
        [ "$(members_of "$v")" = "$want" ] || return 1
        ek=$(epoch_of "$v")
        [ -n "$ek" ] && [ "$ek" -gt 0 ] || return 1
        [ -z "$e" ] || [ "$e" = "$ek" ] || return 1
        e=$ek
    done
    echo "$e" >"$WORK/agreed"
}
agreed() { cat "$WORK/agreed"; }
secs_since() { awk -v a="$1" -v b="$(now_ms)" 'BEGIN { printf "%.2f", (b - a) / 1000 }'; }
# wait_agree SECONDS MEMBERS K...: until agree, or fail.
wait_agree() {
    local secs=$1
    shift
    wait_for "$secs" "sites ${*:2} to agree on members {$1}" agree "$@"
}

# ---- 1. every site runs a cssd; one epoch ----------------------------------------------
log "+ locusctl dev up $MNT --state $STATE --sites 3 --addrs $A1,$A2,$A3"
rc=0
timeout 120 "$LOCUSCTL" dev up "$MNT" --state "$STATE" --sites 3 --addrs "$A1,$A2,$A3" >&2 || rc=$?
[ "$rc" -eq 0 ] || fail "locusctl dev up --sites 3 --addrs failed (exit $rc)"
for k in 1 2 3; do
    alive "$(site_pid $k cssd)" || fail "site $k runs no locus-cssd"
done
wait_agree 30 1,2,3 1 2 3
E0=$(agreed)
log "epoch $E0, members {1,2,3}"
out=$("$LOCUSCTL" sites --state "$STATE") || fail "locusctl sites failed"
case "$out" in *"membership seen by site 1: epoch $E0, members {1,2,3}"*) ;;
    *) fail "locusctl sites does not show the membership: $out" ;; esac

# ---- 2. a cut shorter than the suspicion changes nothing ----------------------------------
t=$(now_ms)
run "$LOCUSCTL" dev partition "$MNT" 1,2/3 --state "$STATE"
sleep 0.2                       # the length of the cut itself
run "$LOCUSCTL" dev heal "$MNT" --state "$STATE"
cut_ms=$(( $(now_ms) - t ))
# wait past a suspicion and a poll (suspect_ms + poll_ms, from the view)
v=$(view 1)
sus=$(num_of "$v" suspect_ms) || sus=
poll=$(num_of "$v" poll_ms) || poll=
[ -n "$sus" ] && [ -n "$poll" ] || fail "the view has no suspect_ms/poll_ms: $v"
[ "$cut_ms" -lt "$sus" ] || log "note: the cut took ${cut_ms} ms (busy machine), not less than ${sus} ms"
sleep "$(awk -v s="$sus" -v p="$poll" 'BEGIN { printf "%.2f", (s + 2 * p) / 1000 }')"
if [ "$cut_ms" -lt "$sus" ]; then
    agree 1,2,3 1 2 3 || fail "a ${cut_ms} ms cut changed the membership: $(view 1) / $(view 3)"
    [ "$(agreed)" = "$E0" ] || fail "a ${cut_ms} ms cut made a new epoch $(agreed) (was $E0)"
    for k in 1 3; do
        v=$(view "$k")
        # every peer has been up since before the cut
        for ms in $(grep -o '"state_ms":[0-9]*' <<<"$v" | cut -d: -f2); do
            [ "$ms" -gt "$cut_ms" ] || fail "site $k: a peer changed state during a ${cut_ms} ms cut: $v"
        done
    done
fi

# ---- 3. partition 1,2/3 ---------------------------------------------------------------
t=$(now_ms)
run "$LOCUSCTL" dev partition "$MNT" 1,2/3 --state "$STATE"
wait_agree 30 3 3
E3=$(agreed)
log "measured: site 3 alone in epoch $E3 $(secs_since "$t") s after the cut"
wait_agree 30 1,2 1 2
E12=$(agreed)
log "measured: sites 1,2 in epoch $E12 $(secs_since "$t") s after the cut"
[ "$E3" -gt "$E0" ] && [ "$E12" -gt "$E0" ] || fail "the epochs did not grow: $E0 -> $E12 / $E3"
v=$(view 3)
case "$v" in *'"site":1,'*'"state":"down"'*) ;; *) fail "site 3 does not hold site 1 down: $v" ;; esac
v=$(view 1)
case "$v" in *'"site":3,"host":"'"$A3"'",'*'"state":"down"'*) ;; *) fail "site 1 does not hold site 3 down: $v" ;; esac

# ---- 4. heal -----------------------------------------------------------------------
t=$(now_ms)
run "$LOCUSCTL" dev heal "$MNT" --state "$STATE"
wait_agree 30 1,2,3 1 2 3
E=$(agreed)
log "measured: merged into epoch $E $(secs_since "$t") s after the heal"
[ "$E" -gt "$E12" ] && [ "$E" -gt "$E3" ] || fail "the merged epoch $E is not above $E12 and $E3"

# ---- 5. kill -9 of site 2's cssd ------------------------------------------------------
pid=$(site_pid 2 cssd)
log "+ kill -9 site 2's locus-cssd ($pid)"
t=$(now_ms)
kill -9 "$pid"
wait_agree 30 1,3 1 3
E13=$(agreed)
log "measured: sites 1,3 in epoch $E13 $(secs_since "$t") s after kill -9 of site 2's cssd"
[ "$E13" -gt "$E" ] || fail "epoch $E13 after the kill is not above $E"
max2=$(num_of "$(cat "$STATE/site2/css/members.json")" max_epoch) || max2=
[ -n "$max2" ] && [ "$max2" -ge "$E" ] || fail "site 2 did not persist its epoch $E: $(cat "$STATE/site2/css/members.json")"

# ---- 6. restart: back to {1,2,3}, epochs only grew ---------------------------------------
log "+ locusctl dev up $MNT --state $STATE (restarts site 2's cssd)"
timeout 120 "$LOCUSCTL" dev up "$MNT" --state "$STATE" >&2 || fail "dev up did not restart site 2's cssd"
alive "$(site_pid 2 cssd)" || fail "site 2's cssd is not running again"
wait_agree 30 1,2,3 1 2 3
EF=$(agreed)
[ "$EF" -gt "$E13" ] && [ "$EF" -gt "$max2" ] || fail "epoch $EF after the restart is not above $E13 and $max2"
log "epochs: $E0 (up), $E12/$E3 (1,2/3), $E (healed), $E13 (site 2 killed), $EF (restarted)"
cluster_down
pass
