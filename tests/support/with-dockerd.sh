#!/bin/sh
# Run a command with a private Docker Engine, so that the gateway's container tests talk to a real
# dockerd:
#
#     tests/support/with-dockerd.sh cargo test --workspace
#
# dockerd (Debian's docker.io; .ci/run installs it) runs with its data, exec root, socket and pid
# file in a temporary folder, without the default bridge and without touching iptables: test
# containers use network `none`. The command gets DOCKER_HOST pointing at that socket and
# LATCHKEY_TEST_DOCKER=1, which turns the container tests' "no Docker, skipping" into a failure.
# Afterwards dockerd is stopped by its PID (it stops its containerd), whatever it mounted is
# unmounted, and the folder is removed.
set -eu

if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGUMENTS...]" >&2
    exit 2
fi
if ! command -v dockerd >/dev/null 2>&1; then
    echo "with-dockerd.sh: dockerd is missing; install Debian's docker.io (see .ci/run)" >&2
    exit 127
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-dockerd.XXXXXX")
dockerd_pid=
stop() {
    if [ -n "$dockerd_pid" ]; then
        kill "$dockerd_pid" 2>/dev/null || true
        # dockerd stops its containers and containerd first; give it time, then insist.
        tries=0
        while kill -0 "$dockerd_pid" 2>/dev/null && [ "$tries" -lt 150 ]; do
            tries=$((tries + 1))
            sleep 0.1
        done
        kill -9 "$dockerd_pid" 2>/dev/null || true
    fi
    # Deepest mounts first (the netns file, overlay layers).
    awk -v root="$scratch" 'index($2, root) == 1 {print $2}' /proc/mounts | sort -r | while read -r mount; do
        umount -l "$mount" 2>/dev/null || true
    done
    rm -rf "$scratch"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

dockerd --storage-driver=overlay2 --iptables=false --bridge=none \
    --data-root="$scratch/data" --exec-root="$scratch/exec" --pidfile="$scratch/docker.pid" \
    -H "unix://$scratch/docker.sock" >"$scratch/dockerd.log" 2>&1 &
dockerd_pid=$!
export DOCKER_HOST="unix://$scratch/docker.sock"

tries=0
until docker version >/dev/null 2>&1; do
    tries=$((tries + 1))
    if ! kill -0 "$dockerd_pid" 2>/dev/null || [ "$tries" -ge 300 ]; then
        echo "with-dockerd.sh: dockerd did not start:" >&2
        tail -n 20 "$scratch/dockerd.log" >&2
        exit 1
    fi
    sleep 0.1
done

export LATCHKEY_TEST_DOCKER=1
status=0
"$@" || status=$?
exit "$status"
