#!/bin/sh
# Smoke test of the lanco test guest: proves it is the machine the cgroup tests need.
# Runs inside the guest, as root, from /src:
#     python3 tests/vm/run.py -- sh tests/vm/guest_smoke.sh
# Prints what it finds and exits non-zero if anything is missing.
set -u

failures=0
ok() { echo "ok   - $*"; }
fail() {
    echo "FAIL - $*"
    failures=$((failures + 1))
}
# contains WORD LIST: is WORD one of the space-separated words of LIST?
contains() {
    case " $2 " in
        *" $1 "*) return 0 ;;
        *) return 1 ;;
    esac
}

echo "kernel $(uname -r); $(systemctl --version | head -n 1); $(python3 --version);" \
    "pytest $(python3 -m pytest --version 2>&1 | sed 's/^pytest //')"

# 1. /sys/fs/cgroup is the unified (v2) hierarchy, and no v1 hierarchy is mounted anywhere.
fstype=$(stat -f -c %T /sys/fs/cgroup)
if [ "$fstype" = cgroup2fs ]; then ok "/sys/fs/cgroup is cgroup2 ($fstype)"; else fail "/sys/fs/cgroup is '$fstype', not cgroup2fs"; fi
# mountinfo: the file system type follows the " - " separator.
grep ' /sys/fs/cgroup ' /proc/self/mountinfo
v1_mounts=$(grep -c ' - cgroup ' /proc/self/mountinfo)
if [ "$v1_mounts" -eq 0 ]; then ok "no cgroup v1 hierarchy mounted"; else fail "$v1_mounts cgroup v1 hierarchies mounted"; fi

# 2. The root cgroup offers the controllers lanco drives.
controllers=$(cat /sys/fs/cgroup/cgroup.controllers)
echo "root cgroup.controllers: $controllers"
for controller in cpu memory pids io; do
    if contains "$controller" "$controllers"; then ok "controller $controller available"; else fail "controller $controller missing"; fi
done

# 3. PID 1 is systemd.
pid1=$(cat /proc/1/comm)
pid1_exe=$(readlink /proc/1/exe)
if [ "$pid1" = systemd ]; then ok "PID 1 is systemd ($pid1_exe)"; else fail "PID 1 is '$pid1' ($pid1_exe)"; fi

# 4. alice's lingering user manager runs and gives her a delegated scope.
if [ -e /var/lib/systemd/linger/alice ]; then ok "alice lingers"; else fail "alice does not linger"; fi
state=$(systemctl is-active user@1000.service)
if [ "$state" = active ]; then ok "user@1000.service is active"; else fail "user@1000.service is '$state'"; fi
if [ -S /run/user/1000/bus ]; then ok "/run/user/1000/bus exists"; else fail "no /run/user/1000/bus"; fi

# Inside the scope: its cgroup line, its controllers, whether alice may create a child cgroup there,
# and what the user manager says about Delegate.
# shellcheck disable=SC2016 # the inner sh expands these
scope_output=$(runuser -u alice -- env XDG_RUNTIME_DIR=/run/user/1000 \
    DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus \
    systemd-run --user --scope -p Delegate=yes sh -c '
        cat /proc/self/cgroup
        cg=/sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)
        echo "controllers=$(cat "$cg/cgroup.controllers")"
        if mkdir "$cg/smoke-child" && rmdir "$cg/smoke-child"; then echo writable=yes; else echo writable=no; fi
        echo "delegate=$(systemctl --user show -p Delegate --value "${cg##*/}")"
    ' 2>&1)
scope_status=$?
echo "as alice, in systemd-run --user --scope -p Delegate=yes (exit $scope_status):"
echo "$scope_output" | sed 's/^/    /'
if [ "$scope_status" -eq 0 ]; then ok "systemd-run --user --scope works for alice"; else fail "systemd-run --user --scope failed"; fi

# systemd-run's own "Running scope as unit" line is in there too: pick the lines by their prefix.
scope_cgroup=$(echo "$scope_output" | sed -n 's/^0:://p')
scope_controllers=$(echo "$scope_output" | sed -n 's/^controllers=//p')
scope_writable=$(echo "$scope_output" | sed -n 's/^writable=//p')
scope_delegate=$(echo "$scope_output" | sed -n 's/^delegate=//p')
case $scope_cgroup in
    /user.slice/user-1000.slice/user@1000.service/*.scope) ok "in scope $scope_cgroup" ;;
    *) fail "not in a scope of alice's user manager: '$scope_cgroup'" ;;
esac
for controller in memory pids; do
    if contains "$controller" "$scope_controllers"; then ok "scope has controller $controller"; else fail "scope lacks controller $controller"; fi
done
if [ "$scope_writable" = yes ]; then ok "alice can create cgroups below the scope"; else fail "scope cgroup not writable by alice"; fi
if [ "$scope_delegate" = yes ]; then ok "scope has Delegate=yes"; else fail "scope Delegate is '$scope_delegate'"; fi

if [ "$failures" -eq 0 ]; then
    echo "guest smoke test: all checks passed"
    exit 0
fi
echo "guest smoke test: $failures check(s) failed"
exit 1
