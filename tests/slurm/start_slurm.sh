#!/usr/bin/env bash
# Installs (if needed) and starts a real single-node Slurm cluster on localhost,
# for tests and CI. Run as root. Idempotent: a second run finds everything up
# and only waits for the nodes.
#
#   sudo bash tests/slurm/start_slurm.sh
#
# Partitions:
#   debug (default)  the real host, CPUs=4 (more than the real cores, so that
#                    4 tasks fit; OverSubscribe=YES).
#   emu              emulated nodes emu1..emuN: extra `slurmd -N emuK`
#                    processes on this host with their own Port=. Good for
#                    reading what srun sets per task for multi-node layouts
#                    (-N2 -m block|cyclic|plane=2); NOT for real multi-node
#                    training (every "node" is this host: port clashes).
#
# Environment (all optional):
#   TFHARNESS_SLURM_STATE       state/log directory  [/var/tmp/tfharness-slurm]
#   TFHARNESS_SLURM_EMU_NODES   number of emulated nodes, 0 = no emu partition [2]
#   TFHARNESS_SLURM_KILL_WAIT   seconds between SIGTERM and SIGKILL on
#                               scancel/timeout/requeue (KillWait)  [10]
#   TFHARNESS_SLURM_CRED_EXPIRE AuthInfo=cred_expire: a requeued job stays
#                               pending (Reason=BeginTime) this many seconds
#                               + 1 before it can start again; Slurm's default
#                               is 120, minimum 5  [5]
#
# Logs: $TFHARNESS_SLURM_STATE/log/{slurmctld,slurmd-NODE,install}.log
# Exit status 0 when every node answers (idle/mixed/allocated) in sinfo;
# otherwise non-zero with one line on stderr: 3 when apt-get could not install
# the packages, 1 for anything else.

set -euo pipefail

readonly SELF=start_slurm.sh
readonly STATE=${TFHARNESS_SLURM_STATE:-/var/tmp/tfharness-slurm}
readonly EMU_COUNT=${TFHARNESS_SLURM_EMU_NODES:-2}
readonly KILL_WAIT=${TFHARNESS_SLURM_KILL_WAIT:-10}
readonly CRED_EXPIRE=${TFHARNESS_SLURM_CRED_EXPIRE:-5}
readonly CONF=/etc/slurm/slurm.conf
readonly NODE_TIMEOUT=60
readonly EMU_FIRST_PORT=6821
readonly START_NS=$(date +%s%N)

die() {
  echo "$SELF: error: $*" >&2
  exit 1
}

die_install() {  # exit 3: the packages could not be installed (conftest skips)
  echo "$SELF: error: $*" >&2
  exit 3
}

seconds_since() {  # seconds_since NANOSECONDS -> "12.3"
  awk -v a="$1" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'
}

pid_alive() {  # pid_alive PIDFILE: the daemon that wrote PIDFILE still runs
  # The process must also still be that daemon (slurmctld.pid: slurmctld,
  # slurmd-NODE.pid: slurmd): after a reboot the number may be another's.
  local pid name comm
  [[ -s $1 ]] || return 1
  pid=$(<"$1")
  name=$(basename "$1" .pid)
  name=${name%%-*}
  [[ $pid =~ ^[0-9]+$ ]] && comm=$(cat "/proc/$pid/comm" 2>/dev/null) &&
    [[ $comm == "$name" ]]
}

stop_pidfiles() {  # stop_pidfiles PIDFILE...: TERM those daemons, wait <= 15 s
  local pidfile pid i alive pids=()
  for pidfile in "$@"; do
    pid_alive "$pidfile" || continue
    pid=$(<"$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    pids+=("$pid")
  done
  for ((i = 0; i < 150; i++)); do
    alive=0
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null && alive=1
    done
    ((alive)) || return 0
    sleep 0.1
  done
  die "daemons ${pids[*]} did not stop within 15 s"
}

last_log_line() {  # last_log_line FILE: its last non-empty line, for messages
  [[ -f $1 ]] && grep -v '^[[:space:]]*$' "$1" | tail -n 1 || true
}

[[ $(id -u) == 0 ]] || die "must run as root (installs packages, starts daemons)"
[[ $EMU_COUNT =~ ^[0-9]+$ ]] || die "TFHARNESS_SLURM_EMU_NODES must be a number"
[[ $KILL_WAIT =~ ^[0-9]+$ ]] || die "TFHARNESS_SLURM_KILL_WAIT must be a number"
[[ $CRED_EXPIRE =~ ^[0-9]+$ && $CRED_EXPIRE -ge 5 ]] ||
  die "TFHARNESS_SLURM_CRED_EXPIRE must be a number >= 5"

HOST=$(hostname -s) || die "hostname -s failed"
[[ -n $HOST ]] || die "hostname -s printed nothing"
readonly HOST
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
mkdir -p "$STATE/log" "$STATE/ctld" || die "cannot create $STATE"

# --- 1. Packages ------------------------------------------------------------
install_seconds=0
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null ||
   ! command -v sinfo >/dev/null || ! command -v munged >/dev/null; then
  install_start=$(date +%s%N)
  install_log="$STATE/log/install.log"
  echo "$SELF: installing slurm-wlm and munge with apt-get (log: $install_log)"
  export DEBIAN_FRONTEND=noninteractive
  # Wait up to 5 minutes for a dpkg/apt lock held by another apt-get.
  apt_lock=(-o DPkg::Lock::Timeout=300)
  apt-get "${apt_lock[@]}" update -qq >"$install_log" 2>&1 ||
    die_install "apt-get update failed: $(last_log_line "$install_log") (log: $install_log)"
  apt-get "${apt_lock[@]}" install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 \
    slurm-wlm munge >>"$install_log" 2>&1 ||
    die_install "apt-get install slurm-wlm munge failed: $(last_log_line "$install_log") (log: $install_log)"
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null &&
    command -v munged >/dev/null ||
    die_install "apt-get succeeded but slurmctld/slurmd/munged are still missing"
  install_seconds=$(seconds_since "$install_start")
  echo "$SELF: installed in ${install_seconds}s"
fi

# Does this slurmd build allow several slurmd per host (--enable-multiple-slurmd)?
# Without it slurmctld rejects a second node with the same NodeHostname, and the
# slurmds, which share one munged, reject the forwarded launch credential as
# "replayed" on every node but the first.
emu_supported() {
  local lib
  for lib in /usr/lib/*/slurm-wlm/auth_munge.so /usr/lib/*/slurm/auth_munge.so \
             /usr/lib/slurm*/auth_munge.so; do
    [[ -f $lib ]] || continue
    grep -q "expected in multiple slurmd mode" "$lib" && return 0
    return 1
  done
  return 1
}

EMU_NODES=()
if ((EMU_COUNT > 0)); then
  if emu_supported; then
    for ((i = 1; i <= EMU_COUNT; i++)); do EMU_NODES+=("emu$i"); done
  else
    echo "$SELF: this Slurm build has no multiple-slurmd support: no emu partition" >&2
  fi
fi
NODES=("$HOST" "${EMU_NODES[@]}")

# --- 2. Munge ---------------------------------------------------------------
readonly MUNGE_KEY=/etc/munge/munge.key
if [[ ! -s $MUNGE_KEY ]]; then
  mkdir -p /etc/munge
  if command -v mungekey >/dev/null; then
    mungekey --create --keyfile="$MUNGE_KEY" >/dev/null 2>&1 ||
      die "mungekey --create failed"
  else
    dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none ||
      die "cannot write $MUNGE_KEY"
  fi
  echo "$SELF: created $MUNGE_KEY"
fi
getent passwd munge >/dev/null || die "user munge does not exist (munge package broken?)"
chown munge:munge /etc/munge "$MUNGE_KEY"
chmod 0700 /etc/munge
chmod 0400 "$MUNGE_KEY"
for dir in /run/munge /var/lib/munge /var/log/munge; do
  mkdir -p "$dir"
  chown munge:munge "$dir"
done
chmod 0755 /run/munge

munge_works() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_works; then
  munge_args=()
  # A munged killed without cleanup leaves its socket behind; --force takes it
  # over. Only when no munged runs at all, so a live one is never displaced.
  pgrep -x munged >/dev/null || munge_args+=(--force)
  runuser -u munge -- /usr/sbin/munged "${munge_args[@]}" 2>"$STATE/log/munged.err" ||
    die "munged did not start: $(last_log_line "$STATE/log/munged.err")"
  for ((i = 0; i < 50; i++)); do munge_works && break; sleep 0.1; done
  munge_works || die "munged started but munge -n | unmunge fails"
  echo "$SELF: started munged"
fi

# --- 3. slurm.conf ----------------------------------------------------------
new_conf=$(mktemp)
trap 'rm -f "$new_conf"' EXIT
{
  cat <<EOF
# Written by tests/slurm/start_slurm.sh (tfharness): a one-host test cluster.
# Re-running the script rewrites this file and restarts the daemons if it changed.
ClusterName=local
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# Requeue: slurmctld gives a requeued job BeginTime = now + cred_expire + 1 s
# (Slurm's default cred_expire is 120 s; 5 is the smallest it accepts; it is
# also how long a job step's launch credential stays valid), and the job then
# starts at the next scheduling pass: every sched_interval (default 60 s) or
# bf_interval (default 30 s) seconds. With 5/1/1 a requeued job runs again
# about 6-7 s after the requeue instead of after 2-3 minutes.
AuthInfo=cred_expire=$CRED_EXPIRE
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SlurmdParameters=config_overrides
ReturnToService=2
# Seconds between SIGTERM and SIGKILL (scancel, time limit, requeue).
KillWait=$KILL_WAIT
# Batch jobs may be requeued (scontrol requeue, or sbatch --requeue on node failure).
JobRequeue=1
# Finished jobs stay visible to scontrol show job this long (no accounting here).
MinJobAge=600
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d-%n
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd-%n.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd-%n.log
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=4 RealMemory=8000 State=UNKNOWN
EOF
  port=$EMU_FIRST_PORT
  for node in "${EMU_NODES[@]}"; do
    echo "NodeName=$node NodeHostname=$HOST NodeAddr=127.0.0.1 Port=$port CPUs=4 RealMemory=8000 State=UNKNOWN"
    port=$((port + 1))
  done
  echo "PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES"
  if ((${#EMU_NODES[@]} > 0)); then
    echo "PartitionName=emu Nodes=$(IFS=,; echo "${EMU_NODES[*]}") Default=NO MaxTime=INFINITE State=UP OverSubscribe=YES"
  fi
} >"$new_conf"

mkdir -p /etc/slurm
conf_changed=0
if ! cmp -s "$new_conf" "$CONF"; then
  conf_changed=1
  install -m 0644 "$new_conf" "$CONF" || die "cannot write $CONF"
  echo "$SELF: wrote $CONF"
fi

# --- 4. Daemons -------------------------------------------------------------
readonly CTLD_PID=$STATE/slurmctld.pid
slurmd_pidfile() { echo "$STATE/slurmd-$1.pid"; }

if ((conf_changed)); then
  # Daemons started with another configuration (other nodes, ports, settings):
  # restart them all, also the slurmds of emulated nodes that the new
  # configuration no longer has. slurmctld keeps its job state across this.
  running=()
  for pidfile in "$STATE"/slurmd-*.pid "$CTLD_PID"; do
    pid_alive "$pidfile" && running+=("$pidfile")
  done
  if ((${#running[@]} > 0)); then
    stop_pidfiles "${running[@]}"
    echo "$SELF: stopped the daemons running with the old $CONF"
  fi
fi

ctld_up() { scontrol ping 2>/dev/null | grep -q 'is UP'; }

if ! pid_alive "$CTLD_PID"; then
  slurmctld 2>"$STATE/log/slurmctld.err" ||
    die "slurmctld did not start: $(last_log_line "$STATE/log/slurmctld.log")"
  echo "$SELF: started slurmctld"
fi
for ((i = 0; i < 200; i++)); do ctld_up && break; sleep 0.1; done
ctld_up || die "slurmctld does not answer scontrol ping within 20 s: $(last_log_line "$STATE/log/slurmctld.log")"

for node in "${NODES[@]}"; do
  if ! pid_alive "$(slurmd_pidfile "$node")"; then
    mkdir -p "$STATE/d-$node"
    slurmd -N "$node" 2>"$STATE/log/slurmd-$node.err" ||
      die "slurmd -N $node did not start: $(last_log_line "$STATE/log/slurmd-$node.log")"
    echo "$SELF: started slurmd -N $node"
  fi
done

# --- 5. Wait for the nodes ------------------------------------------------------
node_state() {  # node_state NODE -> idle, mixed, down*, drained, ... ("" if unknown)
  sinfo -h -N -n "$1" -o '%T' 2>/dev/null | head -n 1
}
resumed=()
deadline=$(($(date +%s) + NODE_TIMEOUT))
while :; do
  not_ready=()
  for node in "${NODES[@]}"; do
    state=$(node_state "$node")
    case $state in
      idle | mixed | allocated | completing) ;;
      drained | draining | down | fail | failing)
        # Responding but taken out of service, e.g. "Kill task failed" from an
        # earlier test run: put it back once.
        if [[ " ${resumed[*]} " != *" $node "* ]]; then
          reason=$(sinfo -h -N -n "$node" -o '%E' 2>/dev/null | head -n 1)
          scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true
          echo "$SELF: node $node was $state (${reason:-no reason}): resumed"
          resumed+=("$node")
        fi
        not_ready+=("$node:$state")
        ;;
      *) not_ready+=("$node:${state:-unknown}") ;;
    esac
  done
  ((${#not_ready[@]} == 0)) && break
  if (($(date +%s) >= deadline)); then
    die "nodes not ready after ${NODE_TIMEOUT}s: ${not_ready[*]} (logs: $STATE/log)"
  fi
  sleep 0.5
done

partitions=$(sinfo -h -o '%P' | tr '\n' ' ')
echo "$SELF: Slurm ready in $(seconds_since "$START_NS")s" \
  "(install ${install_seconds}s); partitions: ${partitions% }; nodes: ${NODES[*]}"
