# Progress helpers for the set-up scripts (sourced): each step prints what it does and roughly how
# long it takes, a heartbeat every 20 s while it runs, and its duration when it ends.
SETUP_T0=${SETUP_T0:-$SECONDS}
_HEARTBEAT_PID=""

_fmt_s() { local s=$1; if [ "$s" -ge 60 ]; then echo "$((s / 60)) min $((s % 60)) s"; else echo "$s s"; fi; }
elapsed_total() { _fmt_s $((SECONDS - SETUP_T0)); }

step() {  # step WHAT ROUGHLY_HOW_LONG
  _STEP_WHAT=$1
  _STEP_T0=$SECONDS
  echo "setup: $1 (${2})..." >&2
  ( t0=$SECONDS; while sleep 20; do echo "setup:   ... still $1 ($(_fmt_s $((SECONDS - t0))))" >&2; done ) &
  _HEARTBEAT_PID=$!
}

done_step() {
  _stop_heartbeat
  echo "setup: done: $_STEP_WHAT in $(_fmt_s $((SECONDS - _STEP_T0)))" >&2
}

_stop_heartbeat() {
  if [ -n "$_HEARTBEAT_PID" ]; then
    kill "$_HEARTBEAT_PID" 2>/dev/null || true
    wait "$_HEARTBEAT_PID" 2>/dev/null || true
    _HEARTBEAT_PID=""
  fi
}
trap _stop_heartbeat EXIT

# This machine's PIP_FIND_LINKS may name absent folders: drop only those warnings.
_pip_noise='is ignored: it is neither a file nor a directory'
quiet_pip() {
  .venv/bin/python -m pip "$@" 2> >(grep -v "$_pip_noise" >&2)
}

# pip install showing its useful lines only: what is downloaded (with sizes) and how many packages
# are installed. The whole output goes to .venv/pip-setup.log; its tail is shown when pip fails.
# (setuptools' "Editable installation" notices are among what is not shown: they concern
# setuptools' own developers, not this project's users.)
pip_with_progress() {
  local log=.venv/pip-setup.log rc
  set +e
  .venv/bin/python -m pip "$@" --progress-bar off 2>&1 | tee "$log" | awk '
    /^ *Downloading / { sub(/^ */, ""); print "setup:   " $0; fflush(); next }
    /^Installing collected packages:/ { n = split($0, a, ","); print "setup:   installing " n " packages"; fflush() }' >&2
  rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" != 0 ]; then
    grep -v "$_pip_noise" "$log" | tail -n 30 >&2
    echo "setup: pip failed (exit $rc); its whole output is in $log" >&2
  fi
  return "$rc"
}
