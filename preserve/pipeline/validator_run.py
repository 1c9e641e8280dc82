"""The validators' child process: `python -m preserve.pipeline.validator_run --serve FD`.

Validators decode files preserve did not choose with libraries (Pillow, pikepdf, zlib,
expat) that a crafted file may hang, crash or blow up. They therefore never run in
preserve's own processes: validating.py starts this module under the sandbox of every
external tool (memory limit, no network, killed with its children) and keeps it for the
files that follow (its start and imports cost 0.2-0.3 s: once per worker, not per
batch). It asks for one file at a time (a JSON line on FD: path, kind, mime, timeout)
and reads the verdict (a JSON line on standard output); a file the child is killed on
(past its time, out of memory, crashed) is the parent's to name, and the next file gets
a new child.
"""

from __future__ import annotations

import json
import os
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


def serve(requests_fd: int) -> int:
    """Validate file after file as the parent asks (a JSON line each on `requests_fd`),
    answering each with a JSON line on standard output, until the requests end."""
    with os.fdopen(requests_fd, encoding="utf-8") as requests:
        for line in requests:
            item = json.loads(line)
            checked = validate_one(item["path"], item["kind"], item.get("mime") or "",
                                   item["timeout"])
            sys.stdout.write(json.dumps({"path": item["path"], **checked.to_dict()}) + "\n")
            sys.stdout.flush()
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "--serve":
        sys.stderr.write("usage: python -m preserve.pipeline.validator_run --serve FD\n")
        return 2
    return serve(int(argv[1]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
