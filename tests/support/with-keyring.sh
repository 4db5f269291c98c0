#!/bin/sh
# Run a command inside a private D-Bus session with a fresh, unlocked gnome-keyring, so that the
# keyring tests talk to a real Secret Service:
#
#     tests/support/with-keyring.sh cargo test --workspace
#
# HOME and the XDG folders point into a temporary folder (gnome-keyring keeps its keyrings under
# ~/.local/share), which is removed afterwards; cargo and rustup keep their own homes. The session
# bus, and the gnome-keyring-daemon on it, end with the command. The login keyring's password is
# LATCHKEY_TEST_KEYRING_PASSWORD (default: `latchkey-test`), for tests that lock and unlock it.
#
# Needs gnome-keyring, dbus and dbus-user-session (Debian packages; .ci/run installs them).
set -eu

if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGUMENTS...]" >&2
    exit 2
fi
for tool in dbus-run-session dbus-send gnome-keyring-daemon; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "with-keyring.sh: $tool is missing; install gnome-keyring, dbus and dbus-user-session (see .ci/run)" >&2
        exit 127
    fi
done

# cargo and rustup find their homes through HOME unless told.
: "${CARGO_HOME:=$HOME/.cargo}"
: "${RUSTUP_HOME:=$HOME/.rustup}"
export CARGO_HOME RUSTUP_HOME

scratch=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-keyring.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -m 700 "$scratch/home" "$scratch/runtime"
export HOME="$scratch/home"
export XDG_DATA_HOME="$HOME/.local/share" XDG_CONFIG_HOME="$HOME/.config" XDG_CACHE_HOME="$HOME/.cache"
export XDG_RUNTIME_DIR="$scratch/runtime"
export LATCHKEY_TEST_KEYRING_PASSWORD="${LATCHKEY_TEST_KEYRING_PASSWORD:-latchkey-test}"
unset DBUS_SESSION_BUS_ADDRESS GNOME_KEYRING_CONTROL

# Inside the session: start the daemon (it creates and unlocks the login keyring with the
# password, then forks), wait until it owns the Secret Service name, then run the command.
status=0
dbus-run-session -- sh -eu -c '
    log="$XDG_RUNTIME_DIR/gnome-keyring.log"
    printf %s "$LATCHKEY_TEST_KEYRING_PASSWORD" | gnome-keyring-daemon --unlock --components=secrets >"$log" 2>&1
    tries=0
    until dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
            org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null | grep -q "boolean true"; do
        tries=$((tries + 1))
        if [ "$tries" -ge 100 ]; then
            echo "with-keyring.sh: gnome-keyring did not start the Secret Service:" >&2
            cat "$log" >&2
            exit 1
        fi
        sleep 0.1
    done
    exec "$@"
' with-keyring "$@" || status=$?
exit "$status"
