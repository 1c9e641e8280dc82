#!/usr/bin/env bash
# Install everything preserve needs on a Debian machine: system packages, then a
# virtual environment in .venv with preserve and its test tools. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# libmagic (MIME sniffing) and a Python with venv; siegfried comes as a wheel (pygfried).
# Info-ZIP (zip) makes the real-producer archives some tests ingest.
# The migration tools of policies/formats.yaml, and what checks their output: ImageMagick
# (images), ffmpeg and flac (audio, video), Ghostscript with its sRGB profile (PDF/A),
# LibreOffice Writer (office documents), poppler (text and page renders of PDFs); fonts
# so that documents render with real glyphs. PostgreSQL: the shared catalog and job queue
# of a repository on many machines (the tests start throwaway servers of their own).
# ClamAV scans what is ingested (its signatures come from freshclam, or a database of the
# archive's own named in the policy).
# tesseract and its Kazakh, Azerbaijani (Latin and Cyrillic), Russian and English models
# read scanned pages for search (extract), OSD telling their script.
# Chromium prints the health report as PDF (report --pdf), and the tests open the HTML
# report and the reading room in it through Playwright (never a browser Playwright
# downloads). faketime: a test runs the reading room on a clock set just before an
# embargo ends.
export DEBIAN_FRONTEND=noninteractive
PACKAGES="libmagic1 python3 python3-venv python3-pip zip imagemagick ffmpeg flac ghostscript
  libreoffice-writer-nogui poppler-utils qpdf fonts-dejavu-core fonts-liberation2 postgresql
  util-linux ca-certificates chromium clamav
  tesseract-ocr tesseract-ocr-osd tesseract-ocr-kaz tesseract-ocr-aze tesseract-ocr-aze-cyrl
  tesseract-ocr-rus tesseract-ocr-eng faketime"
# Another apt (an unattended upgrade) may hold the lock: wait for it rather than fail.
APT_WAIT="-o DPkg::Lock::Timeout=600"
# shellcheck disable=SC2086
# (dpkg-query exits 1 when it knows none of a name: never fatal here)
installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' $PACKAGES 2>/dev/null || true)
missing=$(echo "$installed" | awk '$2 == "installed" {print $1}' | sort \
  | comm -13 - <(echo $PACKAGES | tr ' ' '\n' | sort))
if [ -n "$missing" ]; then
  # shellcheck disable=SC2086
  $SUDO apt-get $APT_WAIT update -qq
  # shellcheck disable=SC2086
  $SUDO apt-get $APT_WAIT install -y -qq --no-install-recommends $missing >/dev/null
fi

# The reading room's page viewer, OpenSeadragon, from the npm registry at the version its
# lock file names (never copied into the repository). Node.js and npm from Debian where
# the machine has none.
if ! command -v npm >/dev/null 2>&1; then
  $SUDO apt-get $APT_WAIT update -qq
  $SUDO apt-get $APT_WAIT install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
(cd preserve/access/viewer && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 \
  | grep -v "is ignored" || true
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]" 2>&1 \
  | grep -v "is ignored" || true
# The editable install leaves preserve's bytecode to be written on first use, which never
# happens where PYTHONDONTWRITEBYTECODE is set: each start (and each worker) would compile
# the package again. Compile it once here, as a regular install would.
.venv/bin/python -m compileall -q preserve >/dev/null
.venv/bin/python -c "import preserve, pygfried, magic, bagit, xxhash, pikepdf.pdfa, PIL, warcio, msoffcrypto, snowballstemmer, ocrmypdf, sqlalchemy, psycopg, procrastinate, pyvips, iiif_prezi3" \
  || { echo "setup failed: preserve's dependencies do not import" >&2; exit 1; }
echo "preserve is installed in .venv (run .venv/bin/preserve --help)"
