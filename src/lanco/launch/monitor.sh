# lanco's per-task monitor, run by /bin/sh (dash, bash and busybox ash alike).
#
# Python prepares everything (cgroups, limits, log, the lists below) and starts this script detached, in a
# session of its own, with the task's argv as "$@". It must stay small: one shell per running task is all
# lanco keeps resident, so no Python interpreter waits here.
#
# lanco/launch/monitorcontract.py is the launcher's side of this script's contract: the variables below, the result
# file, the exit hook's LANCO_* variables. Change both sides together.
#
# Environment (all unset before the task starts):
#   LANCO_MON_STATE     the task's record directory      LANCO_MON_RUN_ID   this run's id
#   LANCO_MON_MONITORS  .monitors cgroup.procs files     LANCO_MON_JOIN     the task's cgroup.procs files
#   LANCO_MON_TRACKER   the task's tracking cgroup       LANCO_MON_DIRS     every cgroup of the task, tracker last
#   LANCO_MON_EVENTS    v2 cgroup.events, or empty       LANCO_MON_WAITER   argv of the v2 wait-until-empty helper
#   LANCO_MON_STATS     "key path field" per line        LANCO_MON_HOOK     exit command for /bin/sh -c, or empty
#   LANCO_MON_HOOK_AS   argv prefix running the hook as the namespace's owner, or empty
#   LANCO_MON_NS, LANCO_MON_TASK, LANCO_MON_LOG           for the hook's LANCO_* variables
#   LANCO_MON_EXEC      argv put before the command (nice, setpriv), or empty
#   LANCO_MON_PATH      "=" and the task's PATH, or empty when it has none (the monitor runs with lanco's)
#   LANCO_MON_UMASK     the task's umask, or empty
#   LANCO_MON_TIMEOUT   seconds a run may last, or empty LANCO_MON_STOP_SIGNAL  signal number the timeout sends first
#   LANCO_MON_STOP_GRACE_MS  milliseconds between that signal and the kill
#   LANCO_MON_KILL      the task's cgroup.kill, or empty (then every process gets SIGKILL)
#   LANCO_MON_FREEZER   "file thawed-value" that thaws the task, or empty
#   LANCO_MON_RESTART   no, on-failure or always         LANCO_MON_RESTART_MAX  most restarts, or empty: no bound
#   LANCO_MON_RESTART_DELAY  seconds between a run's end and the next run
#   LANCO_MON_GO        set when the monitor must wait for "go" on descriptor 5 before anything (systemd scopes)
#   LANCO_MON_CWD       the absolute directory the monitor and the task run in, or empty: the launcher's
# Lists are one item per line. Descriptor 3 is the launcher's report pipe, 1 and 4 the task's stdout and
# stderr; 2 is /dev/null, so that the shell's own notes ("Terminated") stay out of the task's log; 6 the name's
# start lock, until the monitor file is written.
#
# Files it writes in the record directory: monitor (its pid and start time), pid (the current run's first
# process), timeout (a marker: "RUN_ID/RUN" of the run its timer stopped), restarting (RUN_ID while it waits to
# restart), runs.jsonl (with --restart: one line per run, the last 100 to 200 kept), oom_base (the cgroup's OOM kill
# counter at a run's start, once above 0), result (once, at the end).

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

task_populated() {
    # The task still has a process, its sub-cgroups included where v2 says so.
    if [ -n "$LANCO_MON_EVENTS" ]; then
        _populated=0
        while read -r _k _v; do
            [ "$_k" = populated ] && _populated=$_v
        done < "$LANCO_MON_EVENTS" 2>/dev/null
        [ "$_populated" = 1 ] && return 0
    else
        has_processes "$LANCO_MON_TRACKER" && return 0
    fi
    # A process that moved itself out of the tracker's cgroup is still the task's in the task's other cgroups.
    _ifs=$IFS; IFS=$NL
    for _d in $LANCO_MON_DIRS; do
        [ "$_d" != "$LANCO_MON_TRACKER" ] && has_processes "$_d" && { IFS=$_ifs; return 0; }
    done
    IFS=$_ifs
    return 1
}

wait_until_empty() {
    # The usual case, the task's first process was its last: no helper to start, no wait.
    task_populated || return 0
    if [ -n "$LANCO_MON_EVENTS" ] && [ -n "$LANCO_MON_WAITER" ]; then
        # Rare case (the first process left children behind): poll() cgroup.events from a short helper.
        _ifs=$IFS; IFS=$NL; set -- $LANCO_MON_WAITER; IFS=$_ifs
        "$@" "$LANCO_MON_EVENTS" && ! task_populated && return 0
    fi
    # No notification without privilege in v1: back off up to 2 s between looks.
    _delay=0.05
    while task_populated; do
        sleep "$_delay"
        case $_delay in 0.05) _delay=0.1 ;; 0.1) _delay=0.2 ;; 0.2) _delay=0.5 ;; 0.5) _delay=1 ;; *) _delay=2 ;; esac
    done
}

signal_all() {
    # Sends signal number $1 to every process of the task (and SIGCONT after it when $2 is "cont", so that a
    # stopped process acts on it). Sub-cgroups one level down are covered: a v1 task may make some.
    # The task's cgroups in the other hierarchies too, once each process: one that left the tracker's is there.
    _sig=$1; _cont=$2; _sent=' '
    set +f; set -- "$LANCO_MON_TRACKER/cgroup.procs" "$LANCO_MON_TRACKER"/*/cgroup.procs; set -f
    _ifs=$IFS; IFS=$NL
    for _d in $LANCO_MON_DIRS; do
        [ "$_d" = "$LANCO_MON_TRACKER" ] || set -- "$@" "$_d/cgroup.procs"
    done
    IFS=$_ifs
    for _procs do
        [ -r "$_procs" ] || continue
        while read -r _p; do
            case $_sent in *" $_p "*) continue ;; esac
            _sent="$_sent$_p "
            kill -"$_sig" "$_p" 2>/dev/null
            [ "$_cont" = cont ] && kill -CONT "$_p" 2>/dev/null
        done < "$_procs"
    done
}

thaw() {
    # A frozen task acts on no signal (and v1 delivers even SIGKILL only on thaw).
    [ -n "$LANCO_MON_FREEZER" ] || return 0
    set -- $LANCO_MON_FREEZER
    echo "$2" > "$1" 2>/dev/null
}

kill_all() {
    if [ -n "$LANCO_MON_KILL" ] && echo 1 2>/dev/null > "$LANCO_MON_KILL"; then
        thaw
        # Only a task with cgroups in other hierarchies too (hybrid) can have a process outside the tracker's.
        case $LANCO_MON_DIRS in *"$NL"*) ;; *) return 0 ;; esac
    fi
    # Without cgroup.kill: passes of SIGKILL until nobody is left (a process may fork while being killed).
    _pass=0
    while task_populated && [ $_pass -lt 100 ]; do
        signal_all 9
        thaw
        _pass=$((_pass + 1))
        sleep 0.02
    done
}

stop_ladder() {
    # What stop does, from the shell: the stop signal, the grace period, then the kill.
    signal_all "$LANCO_MON_STOP_SIGNAL" cont
    thaw
    # Looks every 10 ms at first (most tasks end at once), then every 50 ms.
    _waited=0
    while task_populated && [ $_waited -lt "$LANCO_MON_STOP_GRACE_MS" ]; do
        if [ $_waited -lt 100 ]; then sleep 0.01; _waited=$((_waited + 10)); else sleep 0.05; _waited=$((_waited + 50)); fi
    done
    task_populated && kill_all
}

start_timer() {
    # The timeout: a background job, which is fine here since only the task must keep default signal
    # dispositions. Until its deadline, TERM (from stop_timer) ends it with its sleep; past it, TERM is
    # ignored, so that the monitor waits for the stop ladder to finish rather than cutting it short.
    timer=
    [ -n "$LANCO_MON_TIMEOUT" ] || return 0
    (
        trap 'kill $_sleeper 2>/dev/null; exit 0' TERM
        sleep "$LANCO_MON_TIMEOUT" &
        _sleeper=$!
        wait $_sleeper || exit 0
        trap '' TERM
        task_populated || exit 0
        echo "$LANCO_MON_RUN_ID/$runs" > "$state/timeout"
        stop_ladder
    ) 3>&- &
    timer=$!
}

stop_timer() {
    [ -n "$timer" ] || return 0
    kill $timer 2>/dev/null
    wait $timer
    timer=
}

stat_value() {
    # Sets _value to field $2 of keyed file $1, or to the whole one-value file when $2 is "-"; empty if none.
    _value=
    [ -r "$1" ] || return 0
    if [ "$2" = "-" ]; then
        read -r _value < "$1"
        return 0
    fi
    while IFS=' ' read -r _k _v; do
        if [ "$_k" = "$2" ]; then _value=$_v; return 0; fi
    done < "$1"
}

oom_count() {
    # The cgroup's OOM kill counter (v2 memory.events, v1 memory.oom_control), 0 where it has none; anything
    # but digits reads as 0, so that the arithmetic on it can never stop the monitor.
    _oom=0
    [ -n "$oom_path" ] || return 0
    stat_value "$oom_path" "$oom_field"
    case $_value in ''|*[!0-9]*) ;; *) _oom=$_value ;; esac
}

remove_cgroups() {
    # One rmdir for every controller directory (an exec each would cost more than the rest of the end); the
    # loop below retries a busy one and removes the tracker, which frees the name, after all of them.
    _ifs=$IFS; IFS=$NL
    set --
    for _d in $LANCO_MON_DIRS; do
        [ "$_d" = "$LANCO_MON_TRACKER" ] || set -- "$@" "$_d"
    done
    [ $# -gt 0 ] && rmdir -- "$@" 2>/dev/null
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
    LANCO_RESTARTS=$restarts \
        exec "$@" /bin/sh -c "$LANCO_MON_HOOK" < /dev/null 2>&4
    # exec: the hook is the monitor's last act. In a systemd scope it runs in monitor/, and the scope ends with it;
    # the name is free already (task/ is gone).
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

# A script whose #! interpreter went missing after run checked it (removed by an upgrade before a restart, say)
# fails its exec with "not found" about the script itself: the log then says which file is missing, as run says at
# the start. Forks only after an exit code of 127.
explain_missing_interpreter() {
    _script=$(case $LANCO_MON_PATH in =*) PATH=${LANCO_MON_PATH#=} ;; *) unset PATH ;; esac
              command -v -- "$1") || return 0
    [ -f "$_script" ] || return 0
    _line=$(head -c 255 -- "$_script" 2>/dev/null | head -n 1)
    case $_line in '#!'*) ;; *) return 0 ;; esac
    _command=$1
    set -- ${_line#??}
    [ $# -gt 0 ] && ! [ -e "$1" ] || return 0
    echo "$(date +%Y-%m-%dT%H:%M:%S) [WARN/run] task $LANCO_MON_TASK: command $_command cannot run: its" \
        "interpreter $1 (its #! line) is not found" >&4
}

marked() {
    # A marker names the run it is meant for ($2, default this run's id), so that a late one cannot mislabel
    # the next run. A stop marker "*" is for whichever run: stop writes it when the task's record is lost (run
    # removes a marker before it starts a monitor, so that one never outlives the run it was written for).
    _marker=
    [ -f "$state/$1" ] && read -r _marker < "$state/$1" && { [ "$_marker" = "${2:-$LANCO_MON_RUN_ID}" ] ||
        { [ "$1" = stop ] && [ "$_marker" = "*" ]; }; }
}

restart_wanted() {
    [ $stopped = yes ] && return 1
    if [ -n "$LANCO_MON_RESTART_MAX" ] && [ $restarts -ge "$LANCO_MON_RESTART_MAX" ]; then return 1; fi
    case $LANCO_MON_RESTART in
        always) return 0 ;;
        on-failure) [ "$result" != exited ] || [ "$exit_code" -ne 0 ] ;;
        *) return 1 ;;
    esac
}

pause_before_restart() {
    # stop sends SIGUSR1 to cut the pause short; the trap makes wait return at once.
    echo "$LANCO_MON_RUN_ID" > "$state/restarting"
    sleep "$LANCO_MON_RESTART_DELAY" &
    _sleeper=$!
    if marked stop || ! wait $_sleeper; then kill $_sleeper 2>/dev/null; fi
    : > "$state/restarting"
}

record_run() {
    _now=$(date +%s)
    echo "{\"run\": $runs, \"result\": \"$result\", \"exit_code\": $exit_code, \"signal\": ${signal:-null}," \
        "\"oom_kills\": $run_oom, \"started_epoch_s\": $run_started, \"ended_epoch_s\": $_now}" >> "$state/runs.jsonl"
    # A task restarting forever keeps a bounded record: past 200 runs, the last 100.
    if [ $((runs % 100)) -eq 0 ] && [ $runs -gt 100 ]; then
        tail -n 100 "$state/runs.jsonl" > "$state/runs.jsonl.tmp" && mv -f "$state/runs.jsonl.tmp" "$state/runs.jsonl"
    fi
}

state=$LANCO_MON_STATE
# Placed through systemd (LANCO_MON_GO), the launcher moves this very process: it joins nothing itself.
[ -n "$LANCO_MON_GO" ] || join_cgroups "$LANCO_MON_MONITORS" || exit 125
read_starttime
# Written in place rather than through a temp file and mv, which would cost an exec on every start: run removed
# the old file, and a reader that finds none or an empty one takes it alike as "no monitor yet".
echo "$$ $_starttime" > "$state/monitor"
# Descriptor 6 holds the name's start lock, handed on by the launcher: until this monitor is known alive (the file
# above), a launcher killed meanwhile must leave no one a gap to take this run for one that never started, clear
# its record or make a new cgroup of its name. Known alive, it lets go.
exec 6<&-
# Caught, not ignored: a subshell resets caught signals to their defaults, so the task still gets SIGUSR1's.
trap ':' USR1

oom_path=
_ifs=$IFS; IFS=$NL
for _line in $LANCO_MON_STATS; do
    IFS=' '; split_stat_line $_line; IFS=$NL
    [ "$_key" = oom_kills ] && { oom_path=$_path; oom_field=$_field; }
done
IFS=$_ifs

if [ -n "$LANCO_MON_GO" ]; then
    # The launcher makes a systemd scope around this process and splits it meanwhile (what comes before this
    # needs no cgroup, and overlaps that), then says go. Its pipe's end without a word (the launcher failed, or
    # died) means this run never happens: nothing ran, and the launcher, or whoever finds its spec, clears it.
    read -r _go <&5 || _go=
    exec 5<&-
    [ "$_go" = go ] || exit 125
fi

# The task's directory is entered here rather than by the launcher, so that one the owner may not enter is said in
# a word of the report (below, where a run that never started leaves nothing), after systemd has placed this shell.
cwd_refused=
if [ -n "$LANCO_MON_CWD" ]; then
    cd -- "$LANCO_MON_CWD" 2>/dev/null || cwd_refused=1
fi

runs=0
restarts=0
while :; do
    runs=$((runs + 1))
    # The counter lives as long as the cgroup, which a restart keeps: a run's OOM kills are counted from here.
    # Views subtract this base too, read from oom_base (run clears it; a fresh cgroup starts at 0).
    oom_count; oom_before=$_oom
    [ "$oom_before" -gt 0 ] && echo "$oom_before" > "$state/oom_base"
    # Runs are recorded one by one only where there can be several (date costs a fork).
    [ "$LANCO_MON_RESTART" = no ] || run_started=$(date +%s)
    [ $runs -gt 1 ] && : > "$state/pid"
    start_timer
    # The task: a foreground subshell, so that SIGINT and SIGQUIT keep their default action in it (a shell
    # ignores both in asynchronous lists, beyond the reach of trap).
    (
        if [ -n "$cwd_refused" ]; then
            echo "error cannot enter the working directory $LANCO_MON_CWD" >&3
            exit 125
        fi
        join_cgroups "$LANCO_MON_JOIN" || exit 125
        read -r _self _rest < /proc/self/stat
        echo "$_self" > "$state/pid"
        if [ $runs -eq 1 ]; then
            # A launcher that died before it read this must not leave a run behind: with SIGPIPE ignored for the
            # report alone, its failure is an error here (no command ran) rather than the death of this shell,
            # which the monitor could not tell from the command's own.
            trap '' PIPE
            echo "started $_self" >&3 || { : > "$state/pid"; exit 125; }
            trap - PIPE
        fi
        # A stop that came while this restart began: it signalled the processes it saw, and this one came
        # too late to be among them.
        [ $runs -gt 1 ] && marked stop && exit 143
        exec 2>&4 3>&- 4>&-
        [ -n "$LANCO_MON_UMASK" ] && umask "$LANCO_MON_UMASK"
        case $LANCO_MON_PATH in =*) PATH=${LANCO_MON_PATH#=} ;; *) unset PATH ;; esac
        _ifs=$IFS; IFS=$NL; set -- $LANCO_MON_EXEC "$@"; IFS=$_ifs
        unset LANCO_MON_STATE LANCO_MON_RUN_ID LANCO_MON_MONITORS LANCO_MON_JOIN LANCO_MON_TRACKER LANCO_MON_DIRS \
            LANCO_MON_EVENTS LANCO_MON_WAITER LANCO_MON_STATS LANCO_MON_HOOK LANCO_MON_HOOK_AS LANCO_MON_NS \
            LANCO_MON_TASK LANCO_MON_LOG LANCO_MON_EXEC LANCO_MON_UMASK LANCO_MON_TIMEOUT LANCO_MON_STOP_SIGNAL \
            LANCO_MON_STOP_GRACE_MS LANCO_MON_KILL LANCO_MON_FREEZER LANCO_MON_RESTART LANCO_MON_RESTART_MAX \
            LANCO_MON_RESTART_DELAY LANCO_MON_PATH LANCO_MON_GO LANCO_MON_CWD NL
        set +f
        exec "$@"
    )
    exit_code=$?
    [ $exit_code -eq 127 ] && explain_missing_interpreter "$1"
    if [ $runs -eq 1 ]; then
        exec 3>&-
        # Nothing ran (the task could not join its cgroups, or the launcher was gone before it heard of the start,
        # whatever killed the task's shell then: a failed report may end it by SIGPIPE): no result, no hook, and the
        # record goes before the cgroups that hold the name.
        if ! [ -s "$state/pid" ]; then
            stop_timer
            rm -f -- "$state/spec.json" "$state/pid"
            remove_cgroups
            exit 125
        fi
    fi

    # Without memory.oom.group (v1 and hybrid) the kernel kills one process per OOM, and nothing tells this
    # shell before the first process ends: then what is left of a run that saw an OOM kill goes with it.
    oom_count
    [ "$_oom" -gt "$oom_before" ] && task_populated && kill_all
    wait_until_empty
    stop_timer

    result=exited
    signal=
    if [ $exit_code -gt 128 ] && [ $exit_code -le 192 ]; then
        signal=$((exit_code - 128))
        result=killed
    fi
    marked timeout "$LANCO_MON_RUN_ID/$runs" && result=timeout
    stopped=no
    marked stop && { result=stopped; stopped=yes; }
    # A run that saw an OOM kill ends oom whatever ended it afterwards (its own exit, a signal, the timeout, a
    # stop): without memory.oom.group the task may run on for long after the kill, and its result must say so.
    oom_count
    run_oom=$((_oom - oom_before))
    [ $run_oom -gt 0 ] && result=oom
    [ "$LANCO_MON_RESTART" = no ] || record_run
    # A run that could not even join its cgroups is not retried.
    [ -s "$state/pid" ] || break
    restart_wanted || break
    pause_before_restart
    # A stop during the pause ends the task; the run before it keeps an oom result.
    marked stop && { [ "$result" = oom ] || result=stopped; break; }
    restarts=$((restarts + 1))
done

oom_kills=0
stats=
_ifs=$IFS; IFS=$NL
for _line in $LANCO_MON_STATS; do
    IFS=' '; split_stat_line $_line; IFS=$NL
    stat_value "$_path" "$_field"
    [ -n "$_value" ] || continue
    # The OOM kills of the last run, which the result describes (a restart keeps the cgroup and its counter).
    [ "$_key" = oom_kills ] && { _value=$run_oom; oom_kills=$run_oom; }
    stats="$stats$_key=$_value$NL"
done
IFS=$_ifs

{
    echo "run_id=$LANCO_MON_RUN_ID"
    echo "result=$result"
    echo "exit_code=$exit_code"
    echo "signal=$signal"
    echo "restarts=$restarts"
    printf '%s' "$stats"
} > "$state/result.tmp" && mv -f "$state/result.tmp" "$state/result"

# Claim the hook before the name is freed: a new run of the same name starts a fresh record. Without a hook there
# is nothing to claim, and no mkdir to exec at every task's end.
claimed=no
[ -n "$LANCO_MON_HOOK" ] && mkdir "$state/hook.claimed" 2>/dev/null && claimed=yes
remove_cgroups
[ $claimed = yes ] && run_hook
exit 0
