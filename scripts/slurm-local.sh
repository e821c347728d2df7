#!/usr/bin/env bash
# A real single-node Slurm cluster (munged + slurmctld + slurmd from Debian's packages) for
# the test suite and for developers. Everything (config, key, sockets, state, logs) lives in
# one scratch directory; the system's own Slurm/MUNGE config and services are not used.
# Meant for root (as CI runs); otherwise sudo is used for apt only, and untested.
#
#   scripts/slurm-local.sh start  [SCRATCH_DIR]   install what is missing, start, wait until
#                                                 the node is idle, print the export line;
#                                                 a no-op if this cluster is already up
#   scripts/slurm-local.sh stop   [SCRATCH_DIR]   cancel all jobs, stop the daemons by PID
#                                                 (logs are kept); fine if already stopped
#   scripts/slurm-local.sh status [SCRATCH_DIR]   which daemons are alive, and sinfo
#                                                 (exit status 1 unless all three are)
#   scripts/slurm-local.sh env    [SCRATCH_DIR]   print `export SLURM_CONF=...`
#
# Only the export line goes to stdout (apt and progress messages go to stderr), so
#   eval "$(scripts/slurm-local.sh start)"   also works.
# SCRATCH_DIR defaults to ${BOTTLENECK_SLURM_DIR:-/tmp/bottleneck-slurm}. Clients find the
# cluster through SLURM_CONF:   eval "$(scripts/slurm-local.sh env)"
# Layout: slurm.conf, munge/ (key, socket), state/, spool/, run/ (PID files), log/.
# The node takes every core and (detected memory - 1 GiB); DefMemPerCPU=1024, so jobs that
# ask for nothing get 1 CPU + 1 GiB and several run at once. Uses ports 6817 and 6818.
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge)
CTLD_PORT=6817
SLURMD_PORT=6818
START_TIMEOUT=30 # seconds, for each daemon to come up
STEP_TIMEOUT=15  # seconds, for running job steps to go away on stop
KILL_TIMEOUT=10  # seconds between SIGTERM and SIGKILL for each daemon

die() {
  echo "slurm-local: $*" >&2
  exit 1
}
say() { echo "slurm-local: $*" >&2; }

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
  exit 2
}

cmd=${1:-}
[ -n "$cmd" ] || usage
shift
[ $# -le 1 ] || usage
DIR=${1:-${BOTTLENECK_SLURM_DIR:-/tmp/bottleneck-slurm}}
[ -n "$DIR" ] || die "empty scratch directory"
case $DIR in /*) ;; *) DIR="$PWD/$DIR" ;; esac
DIR=${DIR%/}
CONF="$DIR/slurm.conf"
MUNGE_SOCK="$DIR/munge/munge.sock"
RUN="$DIR/run"
LOG="$DIR/log"
SPOOL="$DIR/spool"
NODE=$(hostname -s)
DAEMONS=(munged slurmctld slurmd)

SUDO=()
if [ "$(id -u)" -ne 0 ]; then SUDO=(sudo); fi

# --- PID bookkeeping ------------------------------------------------------------------

pidfile() { echo "$RUN/$1.pid"; }

# Is process $1 running? A zombie counts as gone: the daemons are re-parented to PID 1,
# which may reap them only seconds later (seen: ~2 s), and kill -0 succeeds until then.
running() {
  local state
  kill -0 "$1" 2>/dev/null || return 1
  state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# Prints the saved PID of daemon $1 if that process is alive and still is that daemon.
alive_pid() {
  local f pid comm
  f=$(pidfile "$1")
  [ -s "$f" ] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  running "$pid" || return 1
  # Guard against a recycled PID: the process must still run the daemon's binary.
  comm=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ $comm == *"$1"* ]] || return 1
  echo "$pid"
}

# Runs a Slurm client against this cluster, bounded in time.
client() { SLURM_CONF="$CONF" timeout 10 "$@"; }

ctld_up() { client scontrol ping 2>/dev/null | grep -q 'is UP'; }

# Prints the end of daemon $1's log to stderr: log/$1.log (Slurm's own, timestamped) or,
# where that is empty, log/$1.out (the daemon's stderr, which also holds early fatal errors).
show_log() {
  local f
  for f in "$LOG/$1.log" "$LOG/$1.out"; do
    [ -s "$f" ] || continue
    echo "----- tail $f" >&2
    tail -n 30 "$f" >&2
    return 0
  done
}

# Waits up to $1 seconds for the command "${@:3}" to succeed, while daemon $2 stays alive.
wait_for() {
  local timeout=$1 daemon=$2
  shift 2
  local end=$((SECONDS + timeout))
  while ! "$@"; do
    if ! alive_pid "$daemon" >/dev/null; then
      show_log "$daemon"
      stop >/dev/null 2>&1 || true
      die "$daemon exited during startup (logs: $LOG/$daemon.*); stopped the rest"
    fi
    if ((SECONDS >= end)); then
      show_log "$daemon"
      stop >/dev/null 2>&1 || true
      die "timed out after ${timeout}s waiting for $daemon (logs: $LOG/$daemon.*); stopped all"
    fi
    sleep 0.2
  done
}

# Stops daemon $1 by its saved PID: SIGTERM, then SIGKILL after KILL_TIMEOUT.
stop_daemon() {
  local pid end
  if pid=$(alive_pid "$1"); then
    kill -TERM "$pid" 2>/dev/null || true
    end=$((SECONDS + KILL_TIMEOUT))
    while running "$pid" && ((SECONDS < end)); do sleep 0.1; done
    if running "$pid"; then
      say "$1 (pid $pid) ignored SIGTERM for ${KILL_TIMEOUT}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      end=$((SECONDS + 5))
      while running "$pid" && ((SECONDS < end)); do sleep 0.1; done
    fi
    say "stopped $1 (pid $pid)"
  fi
  rm -f "$(pidfile "$1")" "$RUN/$1.own.pid"
}

# Starts "${@:2}" in the background as daemon $1: own session, stdin from /dev/null,
# stdout+stderr to log/$1.out (in -D mode Slurm daemons copy their log there too; munged -F
# logs only there), PID saved from $!.
launch() {
  local name=$1
  shift
  if command -v setsid >/dev/null; then
    # Not a process-group leader in a non-interactive shell, so setsid execs in place:
    # $! is the daemon itself.
    SLURM_CONF="$CONF" setsid "$@" </dev/null >>"$LOG/$name.out" 2>&1 9>&- &
  else
    SLURM_CONF="$CONF" "$@" </dev/null >>"$LOG/$name.out" 2>&1 9>&- &
  fi
  echo $! >"$(pidfile "$name")"
}

# --- start ----------------------------------------------------------------------------

install_packages() {
  local missing=() p created=""
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  say "installing ${missing[*]}"
  # The packages ship init.d scripts; a policy-rc.d that exits 101 keeps apt from
  # starting system-wide daemons. Only a file we created is removed afterwards.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# Created by bottleneck scripts/slurm-local.sh during apt-get install.\nexit 101\n' |
      "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${SUDO[@]}" chmod 0755 /usr/sbin/policy-rc.d
    created=1
    trap '"${SUDO[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  # apt's output goes to stderr: stdout carries only the export line.
  if ! "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
    "${SUDO[@]}" apt-get update >&2
    "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >&2
  fi
  if [ -n "$created" ]; then
    "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d
    trap - EXIT
  fi
}

# Is something listening on TCP port $1?
port_busy() {
  if command -v ss >/dev/null; then
    [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

write_conf() {
  local hw cpus sockets cores threads mem user
  # `slurmd -C` prints e.g. "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2
  # ThreadsPerCore=1 RealMemory=24105".
  hw=$(slurmd -C 2>/dev/null | head -n 1) || true
  field() { sed -n "s/.*[[:space:]]$1=\([0-9]*\).*/\1/p" <<<"$hw"; }
  cpus=$(field CPUs)
  sockets=$(field SocketsPerBoard)
  cores=$(field CoresPerSocket)
  threads=$(field ThreadsPerCore)
  mem=$(field RealMemory)
  [ -n "$cpus" ] && [ -n "$sockets" ] && [ -n "$cores" ] && [ -n "$threads" ] && [ -n "$mem" ] ||
    die "could not parse \`slurmd -C\` output: $hw"
  mem=$((mem - 1024))
  ((mem >= 1024)) || mem=1024
  user=$(id -un)
  cat >"$CONF.tmp" <<EOF
# Written by scripts/slurm-local.sh: a single-node cluster in $DIR.
ClusterName=bottleneck
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
# cred_expire: also how long a requeued job waits before it may start again (default 120 s).
AuthInfo=socket=$MUNGE_SOCK,cred_expire=10
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$SPOOL
SlurmctldPidFile=$RUN/slurmctld.own.pid
SlurmdPidFile=$RUN/slurmd.own.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
# bf_interval: a requeued job waits cred_expire, then starts at the next backfill pass.
SchedulerParameters=batch_sched_delay=0,bf_interval=5
DependencyParameters=kill_invalid_depend
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG/jobcomp.txt
MinJobAge=3600
ReturnToService=2
KillWait=5
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus Sockets=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$CONF.tmp" "$CONF"
}

print_env() { printf 'export SLURM_CONF=%q\n' "$CONF"; }

node_idle() { [[ $(client sinfo -h -o %t 2>/dev/null) == idle ]]; }

start() {
  local d n=0 p
  for d in "${DAEMONS[@]}"; do
    if alive_pid "$d" >/dev/null; then n=$((n + 1)); fi
  done
  if ((n == ${#DAEMONS[@]})) && ctld_up; then
    say "already up in $DIR"
    print_env
    return 0
  fi
  if ((n > 0)); then
    say "a partial cluster is running in $DIR; stopping it first"
    stop
  fi

  install_packages

  for p in $CTLD_PORT $SLURMD_PORT; do
    if port_busy "$p"; then
      die "TCP port $p is already in use (another slurmctld/slurmd?); stop it first, e.g. \`$0 stop OTHER_SCRATCH_DIR\`"
    fi
  done

  mkdir -p "$DIR" "$DIR/munge" "$DIR/state" "$SPOOL" "$RUN" "$LOG"
  chmod 0755 "$DIR/munge"
  rm -f "$RUN"/*.pid "$MUNGE_SOCK" "$MUNGE_SOCK.lock"
  write_conf

  # 1. munged, with its own key, socket, PID and seed files.
  if [ ! -s "$DIR/munge/munge.key" ]; then
    mungekey --create --keyfile="$DIR/munge/munge.key" >/dev/null
  fi
  chmod 0600 "$DIR/munge/munge.key"
  launch munged munged -F --socket="$MUNGE_SOCK" --key-file="$DIR/munge/munge.key" \
    --pid-file="$RUN/munged.own.pid" --seed-file="$DIR/munge/munged.seed"
  wait_for 10 munged test -S "$MUNGE_SOCK"

  # 2. slurmctld, with clean state (-c).
  launch slurmctld slurmctld -D -c -f "$CONF"
  wait_for "$START_TIMEOUT" slurmctld ctld_up

  # 3. slurmd, then wait until the node is idle.
  launch slurmd slurmd -D -N "$NODE" -f "$CONF"
  wait_for "$START_TIMEOUT" slurmd node_idle

  say "up in $DIR (${SECONDS}s): node $NODE, $(client sinfo -h -o '%c CPUs, %m MB')"
  print_env
}

# --- stop -----------------------------------------------------------------------------

# Prints the PIDs of the slurmstepd processes of this cluster (they inherit SLURM_CONF from
# the slurmd that launch() started, and outlive it).
our_stepds() {
  local p
  for p in /proc/[0-9]*; do
    [[ $(cat "$p/comm" 2>/dev/null) == slurmstepd ]] || continue
    tr '\0' '\n' 2>/dev/null <"$p/environ" | grep -qxF "SLURM_CONF=$CONF" || continue
    echo "${p#/proc/}"
  done
}

steps_left() {
  [ -n "$(find "$SPOOL" -type s 2>/dev/null)" ] || [ -n "$(our_stepds)" ]
}

stop() {
  local jobs end p
  if alive_pid slurmctld >/dev/null; then
    jobs=$(client squeue -h -o %F 2>/dev/null | sort -u | tr '\n' ' ') || true
    if [ -n "${jobs// /}" ]; then
      say "cancelling jobs $jobs"
      # shellcheck disable=SC2086 # one argument per job id
      client scancel $jobs 2>/dev/null || true
    fi
  fi
  end=$((SECONDS + STEP_TIMEOUT))
  while steps_left && ((SECONDS < end)); do sleep 0.2; done
  if steps_left; then
    say "job steps still running after ${STEP_TIMEOUT}s; killing them"
    for p in $(our_stepds); do kill -KILL "$p" 2>/dev/null || true; done
  fi
  stop_daemon slurmd
  stop_daemon slurmctld
  stop_daemon munged
  rm -f "$MUNGE_SOCK" "$MUNGE_SOCK.lock"
}

# --- status ---------------------------------------------------------------------------

status() {
  local d pid rc=0
  for d in "${DAEMONS[@]}"; do
    if pid=$(alive_pid "$d"); then
      echo "$d: running (pid $pid)"
    else
      echo "$d: not running"
      rc=1
    fi
  done
  if alive_pid slurmctld >/dev/null; then
    client sinfo || rc=1
  fi
  return "$rc"
}

# start and stop hold a lock on the scratch dir, so parallel callers (tests) do not race.
lock() {
  mkdir -p "$DIR"
  exec 9>"$DIR/.lock"
  flock -w 120 9 || die "could not lock $DIR/.lock within 120 s"
}

case $cmd in
  start)
    lock
    start
    ;;
  stop)
    [ -d "$DIR" ] || exit 0
    lock
    stop
    ;;
  status) status ;;
  env) print_env ;;
  -h | --help | help) usage ;;
  *) usage ;;
esac
