#!/usr/bin/env bash
# Run a command, and run it again whenever it exits, until this script is told
# to stop (SIGTERM or SIGINT, which it passes on). `make run` wraps the Celery
# worker and beat in it: honcho stops everything when one process exits, and a
# worker that died would otherwise leave messages waiting for a person.
# Usage: scripts/keep-running.sh COMMAND [ARG...]
set -u
stopping=
child=
stop() {
    stopping=1
    [ -n "$child" ] && kill -TERM "$child" 2>/dev/null
}
trap stop TERM INT
delay=1
while :; do
    started=$SECONDS
    "$@" &
    child=$!
    # A trap interrupts wait; wait again until the command has really exited.
    while wait "$child"; status=$?; kill -0 "$child" 2>/dev/null; do :; done
    [ -n "$stopping" ] && exit "$status"
    # Back off while it keeps dying at once (Redis still down, a bad setting);
    # a command that ran for a minute starts again after a second.
    if ((SECONDS - started >= 60)); then delay=1; fi
    echo "keep-running: '$*' exited with status $status; starting it again in ${delay}s" >&2
    sleep "$delay" &
    child=$!
    wait "$child"
    [ -n "$stopping" ] && exit 0
    delay=$((delay * 2 > 30 ? 30 : delay * 2))
done
