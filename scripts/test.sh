#!/usr/bin/env bash
# The whole test suite, from a bare machine: installs the real test servers (slapd,
# scim2-server), then runs every unit and black-box test. CI runs exactly this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/testbed.sh install
# Two cores: two test threads keep per-test slapd + scim2-server pairs from starving.
cargo test --locked -- --test-threads "${IDSYNC_TEST_THREADS:-2}"
