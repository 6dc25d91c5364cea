# lanco's per-task monitor, run by /bin/sh (dash, bash and busybox ash alike).
#
# Python prepares everything (cgroups, limits, log, the lists below) and starts this script detached, in a
# session of its own, with the task's argv as "$@". It must stay small: one shell per running task is all
# lanco keeps resident, so no Python interpreter waits here.
#
# Environment (all unset before the task starts):
#   LANCO_MON_STATE     the task's record directory      LANCO_MON_RUN_ID   this run's id
#   LANCO_MON_MONITORS  .monitors cgroup.procs files     LANCO_MON_JOIN     the task's cgroup.procs files
#   LANCO_MON_TRACKER   the task's tracking cgroup       LANCO_MON_DIRS     every cgroup of the task, tracker last
#   LANCO_MON_EVENTS    v2 cgroup.events, or empty       LANCO_MON_WAITER   argv of the v2 wait-until-empty helper
#   LANCO_MON_STATS     "key path field" per line        LANCO_MON_HOOK     exit command for /bin/sh -c, or empty
#   LANCO_MON_HOOK_AS   argv prefix running the hook as the namespace's owner, or empty
#   LANCO_MON_NS, LANCO_MON_TASK, LANCO_MON_LOG           for the hook's LANCO_* variables
# Lists are one item per line. Descriptor 3 is the launcher's report pipe, 1 and 4 the task's stdout and
# stderr; 2 is /dev/null, so that the shell's own notes ("Terminated") stay out of the task's log.

set -f
NL='
'

join_cgroups() {
    # Writing 0 moves the writing process itself; the builtin echo writes from this very shell.
    _ifs=$IFS; IFS=$NL
    for _f in $1; do
        if ! echo 0 > "$_f"; then IFS=$_ifs; echo "error cannot join cgroup $_f" >&3; return 1; fi
    done
    IFS=$_ifs
}

has_processes() {
    # A v1 cgroup has no "populated" flag: it is in use while cgroup.procs lists a process.
    read -r _pid 2>/dev/null < "$1/cgroup.procs"
}

wait_until_empty() {
    if [ -n "$LANCO_MON_EVENTS" ] && [ -n "$LANCO_MON_WAITER" ]; then
        # Rare case (the first process left children behind): poll() cgroup.events from a short helper.
        _ifs=$IFS; IFS=$NL; set -- $LANCO_MON_WAITER; IFS=$_ifs
        "$@" "$LANCO_MON_EVENTS" && return 0
    fi
    # No notification without privilege in v1: back off up to 2 s between looks.
    _delay=0.05
    while has_processes "$LANCO_MON_TRACKER"; do
        sleep "$_delay"
        case $_delay in 0.05) _delay=0.1 ;; 0.1) _delay=0.2 ;; 0.2) _delay=0.5 ;; 0.5) _delay=1 ;; *) _delay=2 ;; esac
    done
}

stat_value() {
    # Prints field $2 of keyed file $1, or the whole one-value file when $2 is "-".
    [ -r "$1" ] || return 0
    if [ "$2" = "-" ]; then
        read -r _v < "$1" && echo "$_v"
        return 0
    fi
    while IFS=' ' read -r _k _v; do
        if [ "$_k" = "$2" ]; then echo "$_v"; return 0; fi
    done < "$1"
}

remove_cgroups() {
    _ifs=$IFS; IFS=$NL
    for _d in $LANCO_MON_DIRS; do
        _try=0
        while [ -d "$_d" ] && ! rmdir "$_d" 2>/dev/null; do
            _try=$((_try + 1))
            [ $_try -ge 50 ] && { echo "lanco monitor: cannot remove cgroup $_d" >&4; break; }
            sleep 0.1
        done
    done
    IFS=$_ifs
}

run_hook() {
    [ -n "$LANCO_MON_HOOK" ] || return 0
    _ifs=$IFS; IFS=$NL; set -- $LANCO_MON_HOOK_AS; IFS=$_ifs
    LANCO_NAMESPACE=$LANCO_MON_NS LANCO_TASK=$LANCO_MON_TASK LANCO_RESULT=$result \
    LANCO_EXIT_CODE=$exit_code LANCO_SIGNAL=$signal LANCO_OOM_KILLS=$oom_kills LANCO_LOG=$LANCO_MON_LOG \
        "$@" /bin/sh -c "$LANCO_MON_HOOK" < /dev/null 2>&4
}

read_starttime() {
    # Field 22 of /proc/PID/stat, the start time, tells this monitor from a later process with its pid.
    # Called without a subshell, so that /proc/self is this shell.
    read -r _stat < /proc/self/stat
    set -- ${_stat##*) }
    shift 19
    _starttime=$1
}

split_stat_line() { _key=$1; _path=$2; _field=$3; }

state=$LANCO_MON_STATE
join_cgroups "$LANCO_MON_MONITORS" || exit 125
read_starttime
echo "$$ $_starttime" > "$state/monitor.tmp" && mv -f "$state/monitor.tmp" "$state/monitor"

# The task: a foreground subshell, so that SIGINT and SIGQUIT keep their default action in it (a shell
# ignores both in asynchronous lists, beyond the reach of trap).
(
    join_cgroups "$LANCO_MON_JOIN" || exit 125
    read -r _self _rest < /proc/self/stat
    echo "$_self" > "$state/pid"
    echo "started $_self" >&3
    exec 2>&4 3>&- 4>&-
    unset LANCO_MON_STATE LANCO_MON_RUN_ID LANCO_MON_MONITORS LANCO_MON_JOIN LANCO_MON_TRACKER LANCO_MON_DIRS \
        LANCO_MON_EVENTS LANCO_MON_WAITER LANCO_MON_STATS LANCO_MON_HOOK LANCO_MON_HOOK_AS LANCO_MON_NS \
        LANCO_MON_TASK LANCO_MON_LOG NL
    set +f
    exec "$@"
)
exit_code=$?
exec 3>&-
[ $exit_code -eq 125 ] && ! [ -s "$state/pid" ] && { remove_cgroups; exit 125; }

wait_until_empty

result=exited
signal=
if [ $exit_code -gt 128 ] && [ $exit_code -le 192 ]; then
    signal=$((exit_code - 128))
    result=killed
fi
oom_kills=0
stats=
_ifs=$IFS; IFS=$NL
for _line in $LANCO_MON_STATS; do
    IFS=' '; split_stat_line $_line; IFS=$NL
    _value=$(stat_value "$_path" "$_field")
    [ -n "$_value" ] || continue
    stats="$stats$_key=$_value$NL"
    [ "$_key" = oom_kills ] && oom_kills=$_value
done
IFS=$_ifs
[ "$oom_kills" -gt 0 ] 2>/dev/null && result=oom
marked() {
    # A marker names the run it is meant for, so that a late one cannot mislabel the next run.
    _marker=
    [ -f "$state/$1" ] && read -r _marker < "$state/$1" && [ "$_marker" = "$LANCO_MON_RUN_ID" ]
}
marked timeout && result=timeout
marked stop && result=stopped

{
    echo "run_id=$LANCO_MON_RUN_ID"
    echo "result=$result"
    echo "exit_code=$exit_code"
    echo "signal=$signal"
    printf '%s' "$stats"
} > "$state/result.tmp" && mv -f "$state/result.tmp" "$state/result"

# Claim the hook before the name is freed: a new run of the same name starts a fresh record.
claimed=no
mkdir "$state/hook.claimed" 2>/dev/null && claimed=yes
remove_cgroups
[ $claimed = yes ] && run_hook
exit 0
