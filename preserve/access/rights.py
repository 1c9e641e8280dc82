"""Rights in use (issue 28): a statement recorded as a version, and the decision every
access asks for (domain/rights.decide) made from what the repository holds.

`record_rights` writes the statement into the AIP's next version (storage/new_version):
its PREMIS carries the statement as PREMIS rights, with a PREMIS event saying who
recorded it and why, and the catalog holds it for `decision`. The decision is computed
each time from the newest statement, the head version's bag-info (the date a term
counts from) and the policy, so that nothing has to be changed on the day an AIP opens.
"""

from __future__ import annotations

import datetime as dt

from preserve import AGENT_NAME, AGENT_PRESERVE, __version__
from preserve.domain.clock import now_utc
from preserve.domain.metadata import check_utf8
from preserve.domain.premis import Agent, Event
from preserve.domain.rights import Decision, RightsStatement, check_statement, decide
from preserve.errors import BadArgument
from preserve.repository import Repository
from preserve.storage.new_version import (
    VersionChange,
    VersionResult,
    add_version,
    current_bag_info,
)
from preserve.storage.versions import version_user


def record_rights(repo: Repository, ref: str, statement: RightsStatement) -> VersionResult:
    """The statement as the AIP's next version; it governs from then on."""
    problems = check_statement(statement)
    for name in ("holder", "jurisdiction", "basis", "license", "note", "from_field"):
        check_utf8(f"--{name.replace('_', '-')}", getattr(statement, name))
    if problems:
        raise BadArgument("the rights statement cannot be recorded: " + "; ".join(problems),
                          hint="'preserve rights --help' lists the options")
    aip_id = repo.catalog.resolve(ref)
    user, _ = version_user()
    person = f"user-{user}"
    statement.recorded = now_utc()
    statement.recorded_by = user
    what = statement.status + "".join(
        f", {label} {value}" for label, value in (
            ("embargo until", statement.embargo_until),
            ("opens", f"{statement.opens_after_years} years after "
                      f"{statement.from_date or statement.from_field}"
             if statement.opens_after_years else None),
            ("licence", statement.license), ("holder", statement.holder)) if value)
    event = Event("metadata modification", statement.recorded, "success",
                  f"rights statement {statement.identifier} recorded: {what}",
                  statement.note, [(AGENT_PRESERVE, "executing program"),
                                   (person, "implementer")])
    agents = [Agent(AGENT_PRESERVE, AGENT_NAME, "software", __version__,
                    "preserve digital preservation repository"), Agent(person, user, "person")]
    return add_version(repo, aip_id, VersionChange(f"rights: {what}", event, agents,
                                                   rights=[statement]))


def decision(repo: Repository, aip_id: str, today: dt.date | None = None) -> Decision:
    """Whether the AIP may be read today (or on `today`), when it opens, and why."""
    today = today or dt.datetime.now(dt.UTC).date()
    statement = repo.catalog.rights_statement(aip_id)
    fields: dict[str, list[str]] = {}
    if statement is not None and (statement.from_field or repo.policy.rights.from_field):
        for label, value in current_bag_info(repo, aip_id):
            fields.setdefault(label, []).append(value)
    return decide(statement, fields, repo.policy.rights, today)


class Decisions:
    """Decisions of one request, each AIP's made once."""

    def __init__(self, repo: Repository, today: dt.date | None = None):
        self.repo, self.today, self.made = repo, today, {}

    def __call__(self, aip_id: str) -> Decision:
        if aip_id not in self.made:
            self.made[aip_id] = decision(self.repo, aip_id, self.today)
        return self.made[aip_id]


REVIEW_DETAIL = "access decision: "  # the detail of the event a review records


def review(repo: Repository, today: dt.date | None = None) -> list[dict]:
    """Record, as a PREMIS event per AIP, each decision that changed since the last one
    recorded (a date passed: an embargo ended, a term ran out; a new statement): what a
    daily job runs, so the history says when each AIP opened. An AIP with a statement is
    reviewed; the first review records its decision as it stands."""
    from preserve.domain import ocfl
    from preserve.storage.object_log import record_event

    changed = []
    catalog = repo.catalog
    last = catalog.last_decisions(REVIEW_DETAIL)
    location = repo.primary_location()
    for aip_id in catalog.aips_with_rights():
        decided = decision(repo, aip_id, today)
        state = "open" if decided.open else "closed"
        if last.get(aip_id) == state:
            continue
        event = Event("policy assignment", now_utc(), "success", f"{REVIEW_DETAIL}{state}"
                      + (f" (opens on {decided.opens_on})" if decided.opens_on else ""),
                      "; ".join(decided.chain), [(AGENT_PRESERVE, "executing program")])
        agents = [Agent(AGENT_PRESERVE, AGENT_NAME, "software", __version__,
                        "preserve digital preservation repository")]
        record_event(repo, location, ocfl.object_root(aip_id), aip_id, event,
                     "rights-review", agents)
        changed.append({"aip": aip_id, "before": last.get(aip_id), "now": state,
                        "opens_on": decided.opens_on})
    return changed
