"""How many real files end proven, unproven and failed under the default format policy.

Real-world files found on this machine (documentation PDFs from Debian packages,
LibreOffice's own documents and images, CPython's test images and sounds), and any
files or folders given, are ingested into a fresh repository, one AIP per kind; then
`preserve migrate --apply --json` runs once, and each planned file is counted as
migrated (proven), unproven (made, but no check could decide) or failed (a tool
failed, or a check found the derivative different), with the reasons.

    .venv/bin/python benchmarks/migration_corpus.py [FILE_OR_FOLDER ...] [--keep]
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRESERVE = [sys.executable, "-m", "preserve"]
FOUND = {
    "pdf": ["/usr/share/doc/*/*.pdf", "/usr/lib/libreoffice/share/xpdfimport/*.pdf",
            str(ROOT / "samples/collection/correspondence/1923/*.pdf")],
    "office": ["/usr/lib/libreoffice/share/template/common/internal/*.odt",
               "/root/.pyenv/versions/*/lib/python3*/site-packages/docutils/writers/"
               "odf_odt/*.odt", "/usr/lib/libreoffice/share/template/*/*/*.ott"],
    "image": ["/root/.pyenv/versions/*/lib/python3*/test/imghdrdata/*.gif",
              "/root/.pyenv/versions/*/lib/python3*/test/imghdrdata/*.bmp",
              "/root/.pyenv/versions/*/lib/python3*/test/imghdrdata/*.tiff",
              "/root/.pyenv/versions/*/lib/python3*/idlelib/Icons/*.gif",
              "/usr/lib/libreoffice/share/template/wizard/bitmap/*.gif",
              str(ROOT / "samples/collection/photographs/*.bmp")],
    "audio": ["/root/.pyenv/versions/*/lib/python3*/test/audiodata/*.wav",
              "/root/.pyenv/versions/*/lib/python3*/test/audiodata/*.aif*",
              str(ROOT / "samples/collection/oral-history/*.wav")],
}


def gather(extra: list[str], into: Path) -> dict[str, int]:
    """Copy the corpus into one folder per kind, each file once (by content)."""
    seen, counts = set(), collections.Counter()
    for kind, patterns in FOUND.items():
        for pattern in patterns:
            for name in sorted(glob.glob(pattern)):
                _take(Path(name), into / kind, seen, counts, kind)
    for name in extra:
        paths = [Path(name)] if Path(name).is_file() else sorted(
            p for p in Path(name).rglob("*") if p.is_file())
        for path in paths:
            _take(path, into / "given", seen, counts, "given")
    return dict(counts)


def _take(path: Path, folder: Path, seen: set, counts, kind: str) -> None:
    data = path.read_bytes()
    if not data or data in seen:
        return
    seen.add(data)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{counts[kind]:03d}-{path.name}"
    target.write_bytes(data)
    counts[kind] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="corpus-"))
    env = dict(os.environ, PRESERVE_REPO=str(work / "repo"), PRESERVE_NO_PROGRESS="1")
    try:
        counts = gather(args.paths, work / "src")
        print("corpus:", ", ".join(f"{n} {k}" for k, n in counts.items()))
        subprocess.run([*PRESERVE, "init"], env=env, check=True, capture_output=True)
        kind_of = {}
        for folder in sorted((work / "src").iterdir()):
            done = subprocess.run([*PRESERVE, "ingest", str(folder), "-c", folder.name,
                                   "--json"], env=env, capture_output=True, text=True)
            if done.returncode not in (0, 3):
                sys.exit(f"ingest of {folder} failed: {done.stderr}")
            kind_of[json.loads(done.stdout)["id"]] = folder.name
        done = subprocess.run([*PRESERVE, "migrate", "--apply", "--json"], env=env,
                              capture_output=True, text=True)
        result = json.loads(done.stdout)
        tally = collections.defaultdict(collections.Counter)
        for outcome, rows in (("proven", result["migrated"]), ("failed", result["rejected"]),
                              ("unproven", result.get("unproven", []))):
            for row in rows:
                tally[kind_of[row["aip"]]][outcome] += 1
                if outcome != "proven":
                    print(f"  {outcome}: {kind_of[row['aip']]}/{row['source'][5:]}: "
                          f"{row['reason'][:240]}")
        print(f"planned {result['planned']} of {sum(counts.values())} files (the others the "
              "policy keeps as they are)")
        for kind in sorted(tally):
            t = tally[kind]
            print(f"{kind:8} proven {t['proven']:3}  unproven {t['unproven']:3}  "
                  f"failed {t['failed']:3}")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
