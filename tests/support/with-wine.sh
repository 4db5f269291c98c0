#!/bin/sh
# Run a command with a Wine prefix for the Windows build's tests, so that Windows programs run on
# this machine:
#
#     tests/support/with-wine.sh cargo test -p latchkey --target x86_64-pc-windows-gnu
#
# The prefix is $CARGO_TARGET_DIR/wine-prefix (LATCHKEY_WINEPREFIX overrides it), created on first
# use and kept, like the build cache beside it. Debian 12's Wine 8 lacks bcryptprimitives.dll,
# whose ProcessPrng Rust's standard library takes random bytes from: tests/windows/processprng.c
# stands in for it, built into the prefix's system32 with mingw-w64 (again when the source is
# newer). Wine and mingw-w64 are Debian's wine64 and gcc-mingw-w64-x86-64 (.ci/run installs them).
#
# The command gets WINEPREFIX, CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER (cargo runs the Windows
# test executables with it; tests/tests/windows_cli.rs runs latchkey.exe with it), and one
# wineserver for the whole run, stopped by its PID afterwards (Wine would otherwise start one, and
# Windows' system processes with it, for every program the tests run).
set -eu

if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGUMENTS...]" >&2
    exit 2
fi
wine=/usr/lib/wine/wine64
wineserver=/usr/lib/wine/wineserver64
if [ ! -x "$wine" ] || [ ! -x "$wineserver" ]; then
    echo "with-wine.sh: $wine is missing; install Debian's wine64 (see .ci/run)" >&2
    exit 127
fi
if ! command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1; then
    echo "with-wine.sh: x86_64-w64-mingw32-gcc is missing; install Debian's gcc-mingw-w64-x86-64 (see .ci/run)" >&2
    exit 127
fi

root=$(cd "$(dirname "$0")/../.." && pwd)
export WINEPREFIX="${LATCHKEY_WINEPREFIX:-${CARGO_TARGET_DIR:-/var/tmp/latchkey-target}/wine-prefix}"
# Wine's notes about what it does not implement would drown the tests' output.
export WINEDEBUG=-all
# No prompts to install Wine's .NET and browser engine: nothing here needs them.
export WINEDLLOVERRIDES="mscoree,mshtml="
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$wine"

wineserver_pid=
stop() {
    if [ -n "$wineserver_pid" ]; then
        # Stops the Windows processes of this prefix (services.exe and the like outlive the
        # programs that started them), then the server itself.
        "$wineserver" --kill 2>/dev/null || kill "$wineserver_pid" 2>/dev/null || true
        wait "$wineserver_pid" 2>/dev/null || true
    fi
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$WINEPREFIX"
"$wineserver" --foreground --persistent &
wineserver_pid=$!

if [ ! -f "$WINEPREFIX/system.reg" ]; then
    echo "with-wine.sh: creating the Wine prefix $WINEPREFIX"
    "$wine" wineboot --init >"$WINEPREFIX/wineboot.log" 2>&1 || {
        echo "with-wine.sh: wineboot failed:" >&2
        tail -n 20 "$WINEPREFIX/wineboot.log" >&2
        exit 1
    }
fi
dll="$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"
source="$root/tests/windows/processprng.c"
if [ ! -f "$dll" ] || [ "$source" -nt "$dll" ]; then
    x86_64-w64-mingw32-gcc -shared -O2 -o "$dll" "$source" -ladvapi32
fi

# Start Wine's own processes (services.exe and the like, kept by the persistent server) now, with
# nothing of ours open: started by the first test's program, they would keep that test's output
# pipes open, and it would wait for their end forever.
"$wine" cmd /c exit </dev/null >/dev/null 2>&1

status=0
"$@" || status=$?
exit "$status"
