#!/bin/sh
# $BROWSER for latchkey's OAuth tests: hands the URL to the scripted browser (consent.mjs).
# NODE picks the node binary (default: the one on PATH).
exec "${NODE:-node}" "$(dirname "$0")/consent.mjs" "$@"
