"""The validators' child process: `python -m preserve.pipeline.validator_run REQUEST RESULT`.

Validators decode files preserve did not choose with libraries (Pillow, pikepdf, zlib,
expat) that a crafted file may hang, crash or blow up. They therefore never run in
preserve's own processes: validating.py starts this module under the sandbox of every
external tool (memory limit, timeout, no network, killed with its children), hands it a
batch of files in REQUEST (JSON lines: path, kind, mime) and reads one JSON line per file
from RESULT, written and flushed as each file is done, so that a run killed on one file
keeps the verdicts of the files before it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import partial

from preserve.errors import PreserveError
from preserve.pipeline.file_verdicts import Checked, not_checked
from preserve.pipeline.validators_documents import (
    check_office,
    check_pdf,
    check_text,
    check_warc,
    check_xml,
    check_zip,
)
from preserve.pipeline.validators_media import check_audio_video, check_image

VALIDATORS: dict[str, Callable[..., Checked]] = {
    "image": check_image,
    "pdf": check_pdf,
    "audio-video": check_audio_video,
    "flac": partial(check_audio_video, flac=True),
    "zip": check_zip,
    "office": check_office,
    "xml": check_xml,
    "text": check_text,
    "warc": check_warc,
}


def validate_one(path: str, kind: str, mime: str, timeout: float) -> Checked:
    validator = VALIDATORS[kind]
    try:
        if kind == "zip":
            return validator(path, timeout, mime=mime)
        return validator(path, timeout)
    except PreserveError as e:  # a tool missing, or one that ran past its time
        return not_checked(e.message)
    except MemoryError:
        return not_checked("the validator ran out of the memory it is allowed")
    except RecursionError:
        return Checked("invalid", ["nested too deeply to be read (a crafted or damaged file)"])


def main(argv: list[str]) -> int:
    request, result = argv
    with open(request, encoding="utf-8") as items, open(result, "a", encoding="utf-8") as out:
        for line in items:
            item = json.loads(line)
            checked = validate_one(item["path"], item["kind"], item.get("mime") or "",
                                   item["timeout"])
            out.write(json.dumps({"path": item["path"], **checked.to_dict()}) + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
