#!/bin/sh
# Runs a Windows program under Wine for the black-box tests: sh wine-run.sh PROGRAM.exe ARGS...
#
# The first Wine process of a session starts wineserver and Wine's own services (services.exe,
# explorer.exe, ...), and they keep the stdout/stderr they were born with until they exit. The
# test harness waits for the CLI's pipes to close, so if a test's run started them, it would wait
# ~3 s for them every time. Starting them here, on /dev/null, and keeping wineserver up for a
# while (-p) makes each run take as long as the program itself. Ten minutes, not one: a program
# started while an idle wineserver shuts down can die at once with exit 1 and no output (seen
# once on a loaded machine), and a loaded suite can leave a minute between two runs.
# Uses WINEPREFIX/WINEDEBUG from the environment (scripts/binary-targets.ts sets them).
WINE="${OAI_WINE:-/usr/lib/wine/wine64}"
WINESERVER="${OAI_WINESERVER:-$(dirname "$WINE")/wineserver}"
# A no-op when a server is already running for this prefix; the services start with the first
# program, so one that runs on /dev/null first makes sure they hold nothing of ours.
"$WINESERVER" -p600 </dev/null >/dev/null 2>&1
"$WINE" cmd.exe /c rem </dev/null >/dev/null 2>&1
exec "$WINE" "$@"
