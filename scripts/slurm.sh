#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, to try compnet's Slurm launcher and to test it (tests/test_slurm.py):
#
#   scripts/slurm.sh up       install Debian's packages if missing, configure, start; wait until the node is idle
#   scripts/slurm.sh down     stop every daemon by its pidfile, in reverse order
#   scripts/slurm.sh status   which daemons run, and sinfo; exit 0 only when the node is up
#
# Root and apt-get (Debian 12: Slurm 22.05, munge) are needed; no systemd and no cgroups. `up` is idempotent: it
# starts what is not running and restarts everything when the configuration it writes has changed. Accounting
# (slurmdbd on MariaDB) is part of it: without `sacct`, submitit cannot tell a job that died without a result
# (killed, out of memory, timed out) from one still running, and the sweep waits forever; with it the sweep fails.
set -euo pipefail

CLUSTER=compnet
PARTITION=debug
CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
LOGS=/var/log/slurm
PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
# daemon name, pidfile, in start order (`down` walks it backwards)
DAEMONS=(
    "munged /run/munge/munged.pid"
    "mariadbd /run/mysqld/mysqld.pid"
    "slurmdbd /run/slurmdbd.pid"
    "slurmctld /run/slurmctld.pid"
    "slurmd /run/slurmd.pid"
)

die() {
    echo "slurm.sh: error: $*" >&2
    exit 1
}

say() { echo "slurm.sh: $*"; }

# Poll `$@` every 0.2 s until it succeeds; give up after $1 seconds.
wait_for() {
    local seconds=$1 i
    shift
    for ((i = 0; i < seconds * 5; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}

# The pid in a pidfile, if that process still runs under the expected name (a stale pidfile's pid may be reused).
running_pid() {
    local name=$1 pidfile=$2 pid
    [[ -s $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]] || return 1
    echo "$pid"
}

install_packages() {
    local missing=0 cmd
    for cmd in slurmctld slurmd sinfo munged slurmdbd mariadbd; do
        command -v "$cmd" >/dev/null || missing=1
    done
    ((missing)) || return 0
    command -v apt-get >/dev/null || die "apt-get not found: the packages (${PACKAGES[*]}) come from Debian"
    say "installing ${PACKAGES[*]} (about a minute)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # without --no-install-recommends apt pulls ~40 packages nothing here uses
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
}

# slurm.conf for this host; the facts behind each setting are in the comments.
slurm_conf() {
    local host node
    host=$(hostname -s)
    # slurmd's own view of the node, with RealMemory lowered to 90%: a node that reports less memory than the
    # configuration claims is drained
    node=$(slurmd -C | head -n 1 | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^RealMemory=/) { split($i, m, "="); $i = "RealMemory=" int(m[2] * 0.9) } print }')
    cat <<EOF
# written by compnet's scripts/slurm.sh: a one-node cluster for trying and testing the Slurm launcher
ClusterName=$CLUSTER
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
# no cgroups here: processes tracked by parent id, no binding (time limits and scancel still work)
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# cores are the consumable, not memory: jobs without --mem do not take the whole node and run side by side
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# a request the node can never satisfy is refused by sbatch, instead of pending forever (and the sweep with it)
EnforcePartLimits=ALL
ReturnToService=2
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
$node
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

# slurmdbd reaches MariaDB as root through its unix socket (MariaDB's default for root on Debian): no password.
dbd_conf() {
    cat <<EOF
# written by compnet's scripts/slurm.sh
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
PidFile=/run/slurmdbd.pid
LogFile=$LOGS/slurmdbd.log
EOF
}

# Write $2 into file $1 (mode $3) if it differs; succeed only when it changed.
write_if_changed() {
    local file=$1 text=$2 mode=$3
    [[ -f $file && $(<"$file") == "$text" ]] && return 1
    mkdir -p "$(dirname "$file")"
    printf '%s\n' "$text" >"$file"
    chmod "$mode" "$file"
}

configure() {
    local host changed=false
    host=$(hostname -s)
    getent hosts "$host" >/dev/null || echo "127.0.0.1 $host" >>/etc/hosts # slurmd and slurmctld resolve it
    write_if_changed "$CONF" "$(slurm_conf)" 644 && changed=true
    write_if_changed "$DBD_CONF" "$(dbd_conf)" 600 && changed=true
    if $changed && any_running; then # every daemon reads its configuration at start only
        say "configuration changed: restarting"
        down
    fi
    mkdir -p "$LOGS" /var/lib/slurm/slurmctld /var/lib/slurm/slurmd
    install -d -o munge -g munge /run/munge
    install -d -o mysql -g mysql /run/mysqld
    # MariaDB opens its log after dropping root: the file must be the mysql user's
    [[ -f $LOGS/mariadb.log ]] || install -o mysql -g mysql -m 640 /dev/null "$LOGS/mariadb.log"
    [[ -d /var/lib/mysql/mysql ]] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
}

any_running() {
    local entry
    for entry in "${DAEMONS[@]}"; do
        # shellcheck disable=SC2086
        running_pid $entry >/dev/null && return 0
    done
    return 1
}

# Start daemon $1 (pidfile $2) with the command that follows unless it runs; the command returns once the daemon
# has detached (mariadbd does not detach itself: setsid -f does it).
start() {
    local name=$1 pidfile=$2
    shift 2
    running_pid "$name" "$pidfile" >/dev/null && return 0
    "$@" || die "$name did not start (logs in $LOGS)"
}

up() {
    [[ $(id -u) == 0 ]] || die "must run as root: it installs Debian packages, writes /etc/slurm and starts daemons"
    install_packages
    configure
    start munged /run/munge/munged.pid runuser -u munge -- /usr/sbin/munged
    wait_for 10 bash -c 'munge -n | unmunge' || die "munge does not answer"
    start mariadbd /run/mysqld/mysqld.pid setsid -f /usr/sbin/mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid \
        --log-error="$LOGS/mariadb.log"
    wait_for 30 mariadb-admin ping || die "MariaDB does not answer ($LOGS/mariadb.log)"
    start slurmdbd /run/slurmdbd.pid /usr/sbin/slurmdbd
    wait_for 30 sacctmgr -n list cluster || die "slurmdbd does not answer ($LOGS/slurmdbd.log)"
    sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER" >/dev/null
    start slurmctld /run/slurmctld.pid /usr/sbin/slurmctld
    start slurmd /run/slurmd.pid /usr/sbin/slurmd
    if ! wait_for 30 node_ready; then
        sinfo -R >&2 || true
        die "the node is not idle: $(sinfo -h -o %t 2>&1) (logs in $LOGS)"
    fi
    say "up: partition $PARTITION on $(hostname -s), $(sinfo -h -o '%c CPUs, %m MB')"
}

node_ready() {
    [[ $(sinfo -h -o %t 2>/dev/null) =~ ^(idle|mix|alloc)$ ]]
}

# Stop daemon $1 by its pidfile $2: SIGTERM, then wait up to 30 s.
stop() {
    local name=$1 pidfile=$2 pid
    pid=$(running_pid "$name" "$pidfile") || return 0
    kill -TERM "$pid"
    wait_for 30 bash -c "! kill -0 $pid" || die "$name (pid $pid) did not stop within 30 s"
    rm -f "$pidfile"
}

down() {
    local i
    if running_pid slurmctld /run/slurmctld.pid >/dev/null && [[ -n $(squeue -h -o %i 2>/dev/null) ]]; then
        say "cancelling the jobs still queued: $(squeue -h -o %i | tr '\n' ' ')"
        squeue -h -o %i | xargs -r scancel || true
        wait_for 30 bash -c '[[ -z $(squeue -h -o %i) ]]' || say "jobs still listed; stopping anyway"
    fi
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        # shellcheck disable=SC2086
        stop ${DAEMONS[i]}
    done
}

status() {
    local entry name pidfile pid
    for entry in "${DAEMONS[@]}"; do
        read -r name pidfile <<<"$entry"
        if pid=$(running_pid "$name" "$pidfile"); then say "$name running (pid $pid)"; else say "$name stopped"; fi
    done
    running_pid slurmctld /run/slurmctld.pid >/dev/null && sinfo
    node_ready
}

case ${1:-} in
up) up ;;
down)
    down
    say "down"
    ;;
status) status ;;
*)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
