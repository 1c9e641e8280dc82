#!/usr/bin/env bash
# Set everything up, then run the main job on the embedded default repository
# (./storage): create it, ingest the bundled sample collection (every file validated,
# ClamAV run where it has signatures), list, validate the stored AIP, validate its files
# again, correct its description (a second OCFL version), report the formats held
# and their risks, migrate those at risk (a third version: PNG from the BMP scan, FLAC
# from the WAV, PDF/A-2b from the letter, each proven before it is kept), show it,
# record its rights, make its access copies and open the reading room on it,
# export every version as a verified bag, audit every replica in full, check that
# catalog and storage agree, verify the signed event log, rebuild the catalog from
# storage alone and prove it equal to the one it replaced, move every copy to a second
# disk (copied, every byte verified there), run a restore drill, report the
# repository's health (NDSA levels from the evidence; HTML, and PDF where Chromium is),
# and show when the next audits are due.
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
# the AIP is an OCFL object; the bag of its first version is v1/content/ inside it
OBJECT=$(.venv/bin/python -c 'import sys; from preserve.domain.ocfl import object_root; print(object_root(sys.argv[1]))' "$AIP")
$P validate "$PRESERVE_REPO/aips/${OBJECT}v1/content"
# a correction is a new version: bag-info and PREMIS change, the payload is not copied
$P describe "$AIP" --title "Sample collection of the town archive" \
   --note "title completed after review"
# every file was validated at ingest (a PREMIS event per file); validate-files runs the
# validators again over what is stored, as events, without a new version
$P validate-files --all
# formats held, their risk by policies/formats.yaml (damaged files at high risk), their
# validation verdicts, and whether this machine can migrate
$P formats
$P migrate --plan
# each derivative re-identified and its content proven equal before a version keeps it
$P migrate --apply
$P show "$AIP"
# full text kept in the AIP (a version: text layers, decoded text, OCR of the scans with
# ALTO and hOCR), then found by words as readers type them
$P extract --all
$P search harbour
$P search "council" --json
# rights as data (a version whose PREMIS holds the statement), and the decision explained
$P rights "$AIP" --status public-domain --note "sample material, released as CC0 1.0"
$P rights explain "$AIP"
# copies for readers, outside the AIP: PDF/A with a text layer, JPEG and IIIF tiles,
# Opus; then the read-only reading room asked for the item, its IIIF manifest and a tile
$P access build --all
$P serve --port 8089 --workers 1 & ROOM=$!
trap 'kill $ROOM 2>/dev/null || true' EXIT
.venv/bin/python - "$AIP" <<'PY'
import json, sys, time, urllib.request
base, aip = "http://127.0.0.1:8089", sys.argv[1]
for _ in range(300):  # until the reading room answers
    try:
        urllib.request.urlopen(base + "/", timeout=5)
        break
    except OSError:
        time.sleep(0.1)
page = urllib.request.urlopen(f"{base}/aip/{aip}", timeout=30).read().decode()
manifest = json.load(urllib.request.urlopen(f"{base}/aip/{aip}/manifest.json", timeout=30))
info = json.load(urllib.request.urlopen(f"{base}/aip/{aip}/iiif/0/info.json", timeout=30))
print(f"reading room: item page {len(page)} bytes, {len(manifest['items'])} page(s) in its "
      f"IIIF manifest, the first {info['width']}x{info['height']} in level-0 tiles")
PY
kill $ROOM; wait $ROOM 2>/dev/null || true
rm -rf "/tmp/preserve-demo-export-$AIP" "/tmp/preserve-demo-export-$AIP-v1"
$P export "$AIP" "/tmp/preserve-demo-export-$AIP"
$P export "$AIP" "/tmp/preserve-demo-export-$AIP-v1" --version 1
$P audit --full
$P check
# the signed history: every event, every copy of the log, every object's logs/
$P log verify
# the catalog is an index: re-created from storage alone (the old one kept aside), and
# proved against the one it replaced, table by table
ASIDE=$($P catalog rebuild --replace --json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["aside"])')
$P catalog diff "$ASIDE"
rm -f "$ASIDE" "$ASIDE-wal" "$ASIDE-shm"
[ -f "$PRESERVE_REPO/locations/second-disk.yaml" ] || \
  $P storage add second-disk "$PRESERVE_REPO/second-disk" --media "hard disk"
$P storage migrate local second-disk --plan
$P storage migrate local second-disk
$P storage list
$P drill --sample 2
$P report
if command -v chromium >/dev/null; then
  $P report --html "$PRESERVE_REPO/health.html" --pdf "$PRESERVE_REPO/health.pdf"
else
  $P report --html "$PRESERVE_REPO/health.html"
fi
$P schedule
