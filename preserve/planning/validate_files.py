"""`preserve validate-files`: the format validators run again over what is already stored
(issue 26), after a validator was added or improved, or for AIPs ingested before there
were any. Preservation Planning's watch over its holdings: no new version is written.

Each file is read from the primary disk once its bytes are found to have their recorded
sha512 (a damaged copy is named, never judged), validated in the sandboxed child
(pipeline/validating.py) on `workers` threads, so both cores decode. Per AIP, once all
its files are done: a PREMIS validation event (the summary, in the catalog and the event
log) whose logs/ document carries an event per file, then the catalog's verdicts. A
catalog rebuilt from storage applies those documents (data/logged_checks.py).
"""

from __future__ import annotations

from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from preserve import AGENT_NAME, AGENT_PRESERVE, __version__
from preserve.domain import ocfl
from preserve.domain.clock import now_utc
from preserve.domain.file_checks import VALIDATION, tool_agent, validation_event
from preserve.domain.names import display
from preserve.domain.premis import Agent, Event, event_xml
from preserve.domain.progress import Progress, Silent
from preserve.errors import ConfigError, FixityMismatch
from preserve.parallel import default_workers
from preserve.pipeline.file_verdicts import AT_RISK, INVALID, Checked
from preserve.pipeline.validating import Item, kind_for, validate_paths
from preserve.repository import Repository
from preserve.storage.object_log import record_event
from preserve.storage.recovery import tidy
from preserve.storage.versions import verified_local

BATCH = 50  # files a child process validates in one start


@dataclass
class Changed:
    aip: str
    path: str
    before: str | None  # the earlier verdict (None: never validated)
    after: str
    findings: list[str]


@dataclass
class ValidateResult:
    aips: int = 0
    files: int = 0
    verdicts: Counter = field(default_factory=Counter)
    no_validator: int = 0
    changed: list[Changed] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.unreadable or self.verdicts[INVALID] else 0

    def to_dict(self) -> dict:
        return {"aips": self.aips, "files": self.files, "verdicts": dict(self.verdicts),
                "no_validator": self.no_validator,
                "changed": [asdict(c) for c in self.changed], "unreadable": self.unreadable,
                "exit_code": self.exit_code}


def validate_stored(repo: Repository, refs: list[str] | None = None, *,
                    workers: int | None = None, progress: Progress | None = None
                    ) -> ValidateResult:
    """Validate every stored payload file of the AIPs (all when `refs` is None)."""
    progress = progress or Silent()
    location = repo.primary_location()
    if not hasattr(location, "local_path"):
        raise ConfigError(f"the primary location '{location.name}' is not a local disk: "
                          "validate-files reads the files there",
                          hint="make a local disk the first location of the policy")
    tidy(repo)
    catalog = repo.catalog
    ids = [catalog.resolve(r) for r in refs] if refs else None
    rows = catalog.payload_to_validate(ids)

    first: dict[str, int] = {}  # rows come by AIP: each AIP's are one slice
    for n, row in enumerate(rows):
        first.setdefault(row[0], n)
    total = Counter(r[0] for r in rows)

    def rows_of(aip: str) -> list[tuple]:
        return rows[first[aip]:first[aip] + total[aip]]

    result = ValidateResult()
    files_of = Counter(r[0] for r in rows)
    progress.start("validating", len(rows), sum(r[3] for r in rows))
    workers = workers or default_workers()
    batches = (rows[i:i + BATCH] for i in range(0, len(rows), BATCH))
    pending: dict[str, dict[str, Checked]] = {}
    with ThreadPoolExecutor(workers) as pool:
        window: deque = deque()
        for batch in batches:  # batches span AIPs; in order, a few ahead for both cores
            window.append((batch, pool.submit(_validate, location, batch, result)))
            if len(window) > 2 * workers:
                _collect(repo, location, *window.popleft(), rows_of, pending, files_of,
                         result, progress)
        while window:
            _collect(repo, location, *window.popleft(), rows_of, pending, files_of, result,
                     progress)
    return result


def _collect(repo, location, batch: list[tuple], future, rows_of, pending: dict,
             files_of: Counter, result: ValidateResult, progress: Progress) -> None:
    """A batch's verdicts; each AIP whose every file is now done is recorded."""
    verdicts = future.result()
    for row in batch:
        aip, path = row[0], row[1]
        done = pending.setdefault(aip, {})
        if (aip, path) in verdicts:
            done[path] = verdicts[(aip, path)]
        files_of[aip] -= 1
        if files_of[aip] == 0:
            _record(repo, location, aip, rows_of(aip), pending.pop(aip), result)
    progress.advance(len(batch), sum(r[3] for r in batch))


def _validate(location, files: list[tuple], result: ValidateResult) -> dict[str, Checked]:
    """One batch's verdicts, by (AIP, bag path); its files checked against their sha512
    first."""
    items, aips = [], {}
    for aip, path, version, size, sha512, puid, mime, magic_mime in files:
        kind = kind_for(puid, mime or magic_mime, path)
        if kind is None or not size:
            continue
        stored = location.local_path(ocfl.key_of(
            ocfl.version_key(ocfl.object_root(aip), version), path))
        try:
            verified_local(stored, sha512, str(stored), "run 'preserve repair'")
        except FixityMismatch as e:  # never judged: its bytes are not the ones recorded
            result.unreadable.append(f"AIP {aip} {display(path)}: {e.message}")
            continue
        items.append(Item(str(stored), kind, mime or magic_mime or "", size, path))
        aips[str(stored)] = aip
    verdicts = validate_paths(items) if items else {}
    return {(aips[i.path], i.name): verdicts[i.path] for i in items if i.path in verdicts}


def _record(repo: Repository, location, aip: str, files: list[tuple],
            verdicts: dict[str, Checked], result: ValidateResult) -> None:
    """One AIP's verdicts: the summary event (its document carrying one event per file),
    then the catalog's rows; changes against the verdicts before are reported."""
    result.aips += 1
    result.files += len(files)
    result.no_validator += len(files) - len(verdicts)
    if not verdicts:
        return
    before = {path: status for _v, path, _c, status, *_ in
              repo.catalog.validations(aip, VALIDATION)}
    version_of = {r[1]: r[2] for r in files}
    when = now_utc()
    parts, rows, tools, counts = [], [], set(), Counter()
    for path, checked in sorted(verdicts.items()):
        event = validation_event(path, checked.status, checked.findings, checked.tools,
                                 checked.method, when, AGENT_PRESERVE)
        parts.append(event_xml(event, aip))
        rows.append((version_of[path], path, VALIDATION, checked.status, checked.detail(),
                     ", ".join(checked.tools), when, event.identifier))
        tools.update(checked.tools)
        counts[checked.status] += 1
        if before.get(path) != checked.status:
            result.changed.append(Changed(aip, path, before.get(path), checked.status,
                                          checked.findings))
    result.verdicts.update(counts)
    worst = ("failure" if counts[INVALID] else
             "warning" if any(counts[s] for s in AT_RISK if s != INVALID) else "success")
    summary = Event(VALIDATION, when, worst,
                    "format validation of the stored files again (validate-files); an "
                    f"event per file follows in this document ({', '.join(sorted(tools))})",
                    ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
                    + f"; {len(files) - len(verdicts)} file(s) of formats without a validator",
                    [(AGENT_PRESERVE, "executing program")])
    agents = [Agent(AGENT_PRESERVE, AGENT_NAME, "software", __version__)] + [
        Agent(tool_agent(t), t.partition(" ")[0], "software", t.partition(" ")[2] or None,
              "validates content") for t in sorted(tools)]
    head = repo.catalog.get_aip(aip).version
    record_event(repo, location, ocfl.object_root(aip), aip, summary, "validation", agents,
                 head, more_events="".join(parts))
    repo.catalog.record_validations(aip, rows)
