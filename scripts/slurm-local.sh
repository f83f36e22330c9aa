#!/usr/bin/env bash
# A one-node SLURM cluster with accounting on this machine, to try and test mnistlab's cluster path.
#
#   scripts/slurm-local.sh up       install (Debian/Ubuntu packages), configure, start; wait until the node is idle
#   scripts/slurm-local.sh down     stop the daemons this script started, by the PIDs it recorded
#   scripts/slurm-local.sh status   which of them run, and the node's state
#
# Run as root. No systemd needed: the daemons are started directly (munged, MariaDB without networking
# and with unix-socket login, slurmdbd, slurmctld, slurmd), their PID files kept in $SLURM_LOCAL_STATE.
# `up` is idempotent: what runs already is left running. Loopback only; no password anywhere.
set -euo pipefail

STATE=${SLURM_LOCAL_STATE:-/var/lib/mnistlab-slurm}
CLUSTER=mnistlab
PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
DAEMONS=(munged mariadb slurmdbd slurmctld slurmd)  # start order; stopped in reverse

say() { echo "slurm-local: $*" >&2; }
die() { say "$*"; exit 1; }

pid_of() {  # the recorded PID of a daemon, if it is alive
    local file="$STATE/$1.pid"
    [[ -s $file ]] && kill -0 "$(cat "$file")" 2>/dev/null && cat "$file"
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds=$1 what=$2
    shift 2
    for ((i = 0; i < seconds * 4; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.25
    done
    die "timed out after ${seconds}s waiting for $what"
}

install_packages() {
    local missing=()
    for package in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    ((${#missing[@]})) || return 0
    command -v apt-get >/dev/null || die "apt-get not found: this script installs SLURM on Debian or Ubuntu"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
}

configure() {
    local host node
    host=$(hostname -s)
    node=$(slurmd -C | head -1)
    mkdir -p "$STATE" /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge /run/mysqld
    chown slurm:slurm /var/spool/slurmctld /var/log/slurm "$STATE"
    chown munge:munge /run/munge
    chown mysql:mysql /run/mysqld
    if [[ ! -s /etc/munge/munge.key ]]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        chown munge:munge /etc/munge/munge.key
        chmod 400 /etc/munge/munge.key
    fi
    cat >/etc/slurm/slurm.conf <<EOF
# Written by mnistlab's scripts/slurm-local.sh: one node, in a container without systemd or cgroups.
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobCompType=jobcomp/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
KillWait=5
MailProg=/bin/true
ReturnToService=2
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    echo "CgroupPlugin=cgroup/v1" >/etc/slurm/cgroup.conf  # slurmd 22.05 will not start without one
    cat >/etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=slurm
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StorageLoc=slurm_acct_db
PidFile=$STATE/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
EOF
    chown slurm:slurm /etc/slurm/slurmdbd.conf
    chmod 600 /etc/slurm/slurmdbd.conf
}

start_munged() {
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
    wait_for 10 "munged" test -s /run/munge/munged.pid
    cp /run/munge/munged.pid "$STATE/munged.pid"
}

start_mariadb() {
    runuser -u mysql -- /usr/sbin/mariadbd --skip-networking --socket=/run/mysqld/mysqld.sock \
        --pid-file=/run/mysqld/mariadb.pid >/var/log/slurm/mariadb.log 2>&1 &
    wait_for 30 "MariaDB" mariadb --socket=/run/mysqld/mysqld.sock -e "SELECT 1"
    cp /run/mysqld/mariadb.pid "$STATE/mariadb.pid"
    mariadb --socket=/run/mysqld/mysqld.sock -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED VIA unix_socket;
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
}

start_slurmdbd() {
    /usr/sbin/slurmdbd
    wait_for 30 "slurmdbd" sacctmgr -n show cluster
    sacctmgr -i -Q add cluster "$CLUSTER" >/dev/null 2>&1 || true
}

start_slurmctld() {
    /usr/sbin/slurmctld
    wait_for 30 "slurmctld" scontrol ping
}

start_slurmd() {
    /usr/sbin/slurmd
}

node_idle() {
    [[ $(sinfo -h -o %T 2>/dev/null) == idle ]]
}

up() {
    [[ $EUID -eq 0 ]] || die "run as root: it installs packages and starts system daemons"
    install_packages
    configure
    for daemon in "${DAEMONS[@]}"; do
        if pid_of "$daemon" >/dev/null; then
            say "$daemon runs already (pid $(pid_of "$daemon"))"
        else
            "start_$daemon"
        fi
    done
    scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
    wait_for 60 "the node to be idle" node_idle
    say "up: $(sinfo -h -o '%P %D %T %c CPUs')"
}

down() {
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        local daemon=${DAEMONS[i]} pid
        if pid=$(pid_of "$daemon"); then
            kill "$pid"
            for ((t = 0; t < 80; t++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
            say "stopped $daemon (pid $pid)"
        fi
        rm -f "$STATE/$daemon.pid"
    done
}

status() {
    local running=0
    for daemon in "${DAEMONS[@]}"; do
        if pid=$(pid_of "$daemon"); then
            echo "$daemon: running (pid $pid)"
            running=$((running + 1))
        else
            echo "$daemon: stopped"
        fi
    done
    ((running)) && sinfo 2>/dev/null || true
    ((running == ${#DAEMONS[@]}))
}

case ${1:-} in
    up) up ;;
    down) down ;;
    status) status ;;
    *) die "usage: $0 up|down|status" ;;
esac
