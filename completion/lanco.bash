# bash completion for lanco(8): global options, namespaces, commands, their options and task names.
# Installed as bash-completion's completions/lanco (scripts/install-shell-files: /usr/share/bash-completion/
# completions on Debian, which needs the package bash-completion), or sourced by hand.
# Namespaces come from `lanco ls`, task names from `lanco NS ls -q [--all]`: both print one name a line and
# read no more than the cgroup and state directories.

_lanco_commands="init run check stop kill freeze thaw set status wait ls dump top logs events release"
_lanco_global_options="-H --host -d -D --cgroup-mode --cgroup-base --help --version"
# The limit options of run and set; every one of them takes a value.
_lanco_limit_options="-m --memory-max --memory-high --memory-low --memory-swap-max --cpu-quota --cpu-weight --cpuset --pids-max
                      --io-weight --io-read-bps --io-write-bps"

# The task names of namespace $1; $2 is "all" for finished tasks too. Global options the user typed (the
# array _lanco_globals: -H, --cgroup-mode, --cgroup-base) are passed on (a host's listings come over ssh), so that they find the same namespace.
_lanco_tasks() {
    local listing=(ls -q)
    [[ $2 == all ]] && listing+=(--all)
    lanco "${_lanco_globals[@]}" "$1" "${listing[@]}" 2>/dev/null
}

# Sets options (what the command accepts), takes_value (its options that take a value) and tasks ("running",
# "all" or empty: which task names its TASK argument completes to) for command $1.
_lanco_command_spec() {
    options="" tasks="" takes_value=""
    case $1 in
        init) options="-u --user -g --group --take-over"; takes_value="-u --user -g --group" ;;
        run) options="-f --foreground -L --keep-log -l --log --log-max-size --log-keep -c --exit-command
                      --label --description $_lanco_limit_options --timeout --stop-signal --stop-timeout --restart --restart-max --restart-delay
                      -e --env --env-file --cwd --umask --nice --user --group"
             takes_value="-l --log --log-max-size --log-keep -c --exit-command --label --description $_lanco_limit_options --timeout --stop-signal --stop-timeout
                          --restart --restart-max --restart-delay -e --env --env-file --cwd --umask --nice
                          --user --group" ;;
        set) options=$_lanco_limit_options; takes_value=$_lanco_limit_options; tasks=running ;;
        kill) options="-s --signal"; takes_value="-s --signal"; tasks=running ;;
        freeze | thaw) tasks=running ;;
        check) tasks=running ;;
        stop) options="-t --timeout -a --all --label"; takes_value="-t --timeout --label"; tasks=running ;;
        wait) options="-t --timeout --any --all --label"; takes_value="-t --timeout --label"; tasks=all ;;
        status) options="--json"; tasks=all ;;
        logs) options="-f --follow -n --lines --rotate -v --verbose"; takes_value="-n --lines"; tasks=all ;;
        events) options="-f --follow --json --since --label"; takes_value="--since --label" ;;
        release) options="-n --dry-run"; tasks=all ;;
        ls) options="-l --long --all --json -q --quiet --label"; takes_value="--label" ;;
        top) options="-d --delay -n --iterations -s --sort --json"; takes_value="-d --delay -n --iterations -s --sort" ;;
        dump) options="" ;;
    esac
    # One space between words, none of the newlines above: " $takes_value " is then matched word by word.
    options=${options//$'\n'/ } takes_value=${takes_value//$'\n'/ }
}

_lanco() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=""
    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
    COMPREPLY=()
    _lanco_globals=()

    # Walk the words before the cursor: global options, then the namespace, then the command.
    local i=1 word namespace="" command="" positional=0 options="" tasks="" takes_value=""
    while ((i < COMP_CWORD)); do
        word=${COMP_WORDS[i]}
        if [[ -z $namespace ]]; then
            case $word in
                -D) ((i += 2)); continue ;;
                -H | --host | --cgroup-mode | --cgroup-base)
                    _lanco_globals+=("$word" "${COMP_WORDS[i + 1]}")
                    ((i += 2))
                    continue
                    ;;
                --host=* | --cgroup-mode=* | --cgroup-base=*) _lanco_globals+=("$word") ;;
                -*) ;;  # -d and friends change messages only: the listings need none of them
                *) namespace=$word ;;
            esac
        elif [[ -z $command ]]; then
            command=$word
            _lanco_command_spec "$command"
        elif [[ " $takes_value " == *" $word "* ]]; then
            ((i++))  # the option's value is not a positional argument
        elif [[ $word != -* ]]; then
            ((positional++))
        fi
        ((i++))
    done

    if [[ -z $namespace ]]; then
        case $prev in
            --cgroup-mode) mapfile -t COMPREPLY < <(compgen -W "v2 hybrid v1" -- "$cur"); return ;;
            --cgroup-base) mapfile -t COMPREPLY < <(compgen -d -- "$cur"); return ;;
            -H | --host)
                # bash-completion's hosts (ssh config, known_hosts) when it is loaded; none otherwise.
                declare -F _known_hosts_real >/dev/null && _known_hosts_real -a -- "$cur"
                return
                ;;
            -D) mapfile -t COMPREPLY < <(compgen -W "$_lanco_commands" -- "$cur"); return ;;
        esac
        if [[ $cur == -* ]]; then
            mapfile -t COMPREPLY < <(compgen -W "$_lanco_global_options" -- "$cur")
        else
            mapfile -t COMPREPLY < <(compgen -W "ls restore $(lanco "${_lanco_globals[@]}" ls 2>/dev/null)" -- "$cur")
        fi
        return
    fi
    if [[ -z $command ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$_lanco_commands" -- "$cur")
        return
    fi


    if [[ " $takes_value " == *" $prev "* ]]; then
        case $prev in
            -l | --log) mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;
            -u | --user) mapfile -t COMPREPLY < <(compgen -u -- "$cur") ;;
            -g | --group) mapfile -t COMPREPLY < <(compgen -g -- "$cur") ;;
            -s | --sort | --signal)
                if [[ $command == kill ]]; then
                    mapfile -t COMPREPLY < <(compgen -W "$(compgen -A signal | sed 's/^SIG//')" -- "$cur")
                else
                    mapfile -t COMPREPLY < <(compgen -W "cpu memory pids name" -- "$cur")
                fi
                ;;
            --stop-signal) mapfile -t COMPREPLY < <(compgen -W "$(compgen -A signal | sed 's/^SIG//')" -- "$cur") ;;
            --restart) mapfile -t COMPREPLY < <(compgen -W "no on-failure always" -- "$cur") ;;
            --env-file) mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;
            --cwd) mapfile -t COMPREPLY < <(compgen -d -- "$cur") ;;
        esac
        return
    fi
    if [[ $command == run ]]; then
        # run TASK CMD ARGS...: the task name is new (no completion), then a command, then its arguments.
        if ((positional == 1)); then
            mapfile -t COMPREPLY < <(compgen -c -- "$cur")
            return
        elif ((positional > 1)); then
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
            return
        fi
    fi
    if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$options" -- "$cur")
    elif [[ -n $tasks ]] && { ((positional == 0)) || [[ $command == stop ]]; }; then
        # stop takes several tasks; every other command one.
        mapfile -t COMPREPLY < <(compgen -W "$(_lanco_tasks "$namespace" "$tasks")" -- "$cur")
    fi
}

complete -F _lanco lanco
