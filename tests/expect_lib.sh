# Shared by the bad-input scripts (bad_inputs.sh, checkpoint_guard.sh): run a command that must
# fail cleanly, and count the cases. Source it after setting WORK; it defines:
#   fail MESSAGE                 prints FAIL: MESSAGE and ends the script
#   expect_failure NAME MESSAGE MAX_S CMD...
#                                runs CMD (timeout 60 s, output in WORK/NAME.log); it must exit
#                                non-zero, not hang, take at most MAX_S seconds (0: no limit) and
#                                print MESSAGE. Sets EXPECT_DT to its seconds.
#   expect_ok NAME MESSAGE       counts the case and prints its line
cases=0
fail() { echo "FAIL: $*"; exit 1; }
expect_failure() {
  local name=$1 message=$2 max_s=$3
  shift 3
  local t0=$SECONDS
  timeout 60 "$@" > "$WORK/$name.log" 2>&1
  local rc=$?
  EXPECT_DT=$((SECONDS - t0))
  ((rc != 0)) || fail "$name: exited 0"
  ((rc != 124)) || fail "$name: hung"
  ((max_s == 0 || EXPECT_DT <= max_s)) || fail "$name: took $EXPECT_DT s"
  grep -qF -- "$message" "$WORK/$name.log" ||
    fail "$name: no '$message' in: $(grep -m2 error "$WORK/$name.log" || head -3 "$WORK/$name.log")"
}
expect_ok() {
  cases=$((cases + 1))
  echo "ok: $1 ($EXPECT_DT s): $(grep -m1 -F -- "$2" "$WORK/$1.log" | cut -c1-160)"
}
