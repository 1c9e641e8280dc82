"""What an equivalence check answers: a Proof (what it proved), or CheckFailed saying what
differs, or Unproven where the check could not decide; and the limits every decoding run
shares."""

from __future__ import annotations

from dataclasses import dataclass

DECODE_MEMORY_MB = 4096  # what a decoding tool may take


class CheckFailed(Exception):
    """The derivative does not hold what the source held (the message says what differs)."""

    unproven = False


class Unproven(CheckFailed):
    """The check could not decide: its tool cannot read the file, or sees it in a way that
    may differ without the content differing (a validator that leaves an object
    unchecked, text extraction). The derivative is not kept, but it is not known to be
    wrong either: migrate, its events and `formats` say "could not be proven", apart from
    "failed" (red-team 2026-12: 3 of 4 real PDFs)."""

    unproven = True


@dataclass
class Proof:
    checks: list[str]

    def summary(self) -> str:
        return "; ".join(self.checks)
