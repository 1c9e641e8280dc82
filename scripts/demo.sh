#!/usr/bin/env bash
# Set everything up, then run the main job on the embedded default repository
# (./storage): create it, ingest the bundled sample collection, list, show,
# validate the stored AIP, export it as a verified bag, audit every replica in full,
# check that catalog and storage agree, and show when the next audits are due.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PRESERVE_REPO="${PRESERVE_REPO:-$PWD/storage}"
P=.venv/bin/preserve

$P init
$P ingest samples/collection --collection "Town archive" --title "Sample collection" \
   --creator "preserve demo" --rights "CC0 1.0"
$P list
AIP=$($P list --json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
$P show "$AIP"
$P validate "$PRESERVE_REPO/aips/${AIP:0:2}/$AIP/v1"
rm -rf "/tmp/preserve-demo-export-$AIP"
$P export "$AIP" "/tmp/preserve-demo-export-$AIP"
$P audit --full
$P check
$P schedule
