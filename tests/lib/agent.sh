# tests/lib/agent.sh: start and stop `shoal agent` processes in shell tests
# (sourced after tap.sh). Every wait is bounded.

# free_port: prints a TCP port nothing listens on (bind-and-release via
# python3, which meson already needs).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_http URL SECONDS: polls until URL answers (any status), or fails.
wait_http() {
    _end=$(( $(date +%s) + $2 ))
    while [ "$(date +%s)" -le "$_end" ]; do
        curl -s -o /dev/null -m 1 "$1" && return 0
        sleep 0.1
    done
    return 1
}

# wait_for SECONDS CMD...: runs CMD every 0.1 s until it succeeds; fails
# once the wall clock (whole seconds) is past SECONDS from now.
wait_for() {
    _end=$(( $(date +%s) + $1 )); shift
    until "$@"; do
        [ "$(date +%s)" -gt "$_end" ] && return 1
        sleep 0.1
    done
}

# wait_exit PID SECONDS: waits for PID (a child of this shell) to exit and
# sets EXIT_STATUS to its status, or to 124 if it still runs after SECONDS.
# Call it directly, not in $(...): only this shell can reap its child.
wait_exit() {
    _end=$(( $(date +%s) + $2 ))
    while kill -0 "$1" 2>/dev/null; do
        if [ "$(date +%s)" -gt "$_end" ]; then
            EXIT_STATUS=124
            return 1
        fi
        sleep 0.05
    done
    wait "$1"
    EXIT_STATUS=$?
}
