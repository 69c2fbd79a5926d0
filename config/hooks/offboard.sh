#!/bin/sh
# An idsync hook command: the action arrives as JSON on stdin, its idempotency key in
# $IDSYNC_IDEMPOTENCY_KEY. Exit 0 when done; anything else is a failure (a required
# `before` hook then holds the action). The first lines of the output are journaled.
set -eu
action=$(cat)
user=$(printf '%s' "$action" | python3 -c 'import json,sys; print(json.load(sys.stdin)["user_name"])')
logger -t idsync-hook "offboarding $user (key $IDSYNC_IDEMPOTENCY_KEY)"
echo "offboarded $user"
