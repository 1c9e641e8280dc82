"""Rights and embargoes as data, and the one function that decides (issue 28, issue 27).

A rights statement is recorded in an AIP's version as PREMIS rights (premis.rights_xml)
and in the catalog; whether the AIP may be read is never stored by hand but computed by
`decide` from the newest statement, the AIP's description and the policy, on a given
day: `export`, `search` (its snippets) and what comes after it all ask this function.

The rules, in order:
1. an embargo closes the AIP until its end date (the day it ends, it opens);
2. public domain and licensed material is open;
3. copyrighted material opens a number of years after a date (the creator's death, the
   publication), counted as most statutes count (Berne art. 7(5)): to the end of that
   calendar year, so it opens on 1 January of the year after; `exact` counting opens on
   the anniversary (29 February: on 1 March in a year without it). No date to count
   from: closed;
4. unknown status: closed;
5. no statement at all: the policy's `without_statement` (open by default, so that a
   repository that records no rights keeps working as before; a reading room sets it to
   closed).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from dataclasses import asdict, dataclass, field

STATUSES = ("copyrighted", "public-domain", "licensed", "unknown")
AUDIENCES = ("public", "staff")
COUNTING = ("year-end", "exact")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass
class RightsStatement:
    status: str
    holder: str | None = None
    jurisdiction: str | None = None
    basis: str | None = None  # the law, contract or finding the statement rests on
    license: str | None = None  # a licence's URI
    embargo_until: str | None = None  # ISO date: closed before it
    opens_after_years: int | None = None
    from_date: str | None = None  # ISO date the years count from
    from_field: str | None = None  # or the bag-info label holding it
    counting: str | None = None  # year-end (default) or exact
    note: str | None = None
    audience: str | None = None  # "staff": the reading room shows it to staff only
    identifier: str = field(default_factory=lambda: str(uuid.uuid4()))
    recorded: str = ""  # when (the version's time)
    recorded_by: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> RightsStatement:
        data = json.loads(text)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class RightsPolicy:
    """policies/default.yaml `rights:`: what holds where a statement leaves it open."""
    without_statement: str = "open"  # open or closed
    opens_after_years: int | None = None  # e.g. 75: copyrighted material's default rule
    from_field: str | None = None  # e.g. Creator-Death-Date
    counting: str = "year-end"


@dataclass
class Decision:
    open: bool
    opens_on: str | None  # ISO date the AIP opens, when closed and it will
    chain: list[str]  # the rules applied, in order, as a person reads them
    statement: str | None = None  # the statement's identifier
    staff_only: bool = False  # open, but the reading room shows it to signed-in staff only

    def to_dict(self) -> dict:
        return asdict(self)


def check_statement(s: RightsStatement) -> list[str]:
    """What is wrong with a statement (nothing: an empty list)."""
    problems = []
    if s.status not in STATUSES:
        problems.append(f"status must be one of {', '.join(STATUSES)}")
    for name in ("embargo_until", "from_date"):
        value = getattr(s, name)
        if value is not None and parse_date(value) is None:
            problems.append(f"{name.replace('_', '-')} must be a date as YYYY-MM-DD")
    if s.opens_after_years is not None and not 0 < s.opens_after_years <= 500:
        problems.append("opens-after must be a number of years from 1 to 500")
    if s.opens_after_years is not None and not (s.from_date or s.from_field):
        problems.append("opens-after needs --from-date or --from-field")
    if s.counting is not None and s.counting not in COUNTING:
        problems.append(f"counting must be one of {', '.join(COUNTING)}")
    if s.audience is not None and s.audience not in AUDIENCES:
        problems.append(f"audience must be one of {', '.join(AUDIENCES)}")
    if s.status == "licensed" and not (s.license or s.basis):
        problems.append("a licensed status needs --license (a URI) or --basis")
    return problems


def parse_date(text: str | None) -> dt.date | None:
    """A date from YYYY-MM-DD, or the date part of an ISO 8601 date-time; else None."""
    if not text:
        return None
    m = DATE.match(text.strip())
    if not m:
        return None
    try:
        return dt.date.fromisoformat(m.group())
    except ValueError:
        return None


def opening_day(start: dt.date, years: int, counting: str = "year-end") -> dt.date:
    """The day a term of `years` counted from `start` has run out."""
    if counting == "exact":
        try:
            return start.replace(year=start.year + years)
        except ValueError:  # 29 February, in a year without one: protected through 28
            return dt.date(start.year + years, 3, 1)
    return dt.date(start.year + years + 1, 1, 1)


def decide(statement: RightsStatement | None, fields: dict[str, list[str]],
           policy: RightsPolicy, today: dt.date) -> Decision:
    """Whether an AIP may be read on `today`, when it will open, and why."""
    if statement is None:
        is_open = policy.without_statement == "open"
        return Decision(is_open, None, [
            f"no rights statement: policy rights.without_statement is "
            f"{policy.without_statement}"])
    chain: list[str] = [f"rights statement {statement.identifier}"
                        + (f" of {statement.recorded[:10]}" if statement.recorded else "")
                        + f": {statement.status}"]
    opens: list[dt.date] = []
    embargo = parse_date(statement.embargo_until)
    if embargo is not None:
        if today < embargo:
            chain.append(f"embargo until {embargo}: closed before that day")
            opens.append(embargo)
        else:
            chain.append(f"embargo ended on {embargo}")
    status_open, status_opens = _by_status(statement, fields, policy, today, chain)
    if status_opens:
        opens.append(status_opens)
    is_open = status_open and not (embargo and today < embargo)
    if is_open:
        staff = statement.audience == "staff"
        chain.append("open to signed-in staff only (audience: staff)" if staff else "open")
        return Decision(True, None, chain, statement.identifier, staff)
    will_open = (status_open or status_opens is not None)
    opens_on = max(opens) if will_open and opens else None
    chain.append(f"closed; opens on {opens_on}" if opens_on else "closed; no date it opens")
    return Decision(False, opens_on.isoformat() if opens_on else None, chain,
                    statement.identifier)


def _by_status(s: RightsStatement, fields: dict[str, list[str]], policy: RightsPolicy,
               today: dt.date, chain: list[str]) -> tuple[bool, dt.date | None]:
    """(open by its status, the day it opens when a term runs)."""
    if s.status in ("public-domain", "licensed"):
        chain.append(f"{s.status}: open" + (f" under {s.license}" if s.license else ""))
        return True, None
    if s.status == "unknown":
        chain.append("status unknown: closed until a statement says otherwise")
        return False, None
    years = s.opens_after_years or policy.opens_after_years
    if not years:
        chain.append("copyrighted, with no term that ends: closed")
        return False, None
    counting = s.counting or policy.counting
    if s.opens_after_years:
        label, start_text = s.from_field, s.from_date
    else:
        label, start_text = policy.from_field, None
        chain.append(f"the policy's term: {years} years from {label}")
    if start_text is None and label:
        values = fields.get(label) or []
        start_text = values[0] if values else None
        where = f"bag-info {label}"
    else:
        where = "the statement's date"
    start = parse_date(start_text)
    if start is None:
        chain.append(f"copyrighted for {years} years from {where}, which "
                     + ("is not a date" if start_text else "is missing") + ": closed")
        return False, None
    day = opening_day(start, years, counting)
    rule = "to the end of the year" if counting == "year-end" else "to the day"
    if today >= day:
        chain.append(f"{years} years from {start} ({where}, counted {rule}) ended: "
                     f"public since {day}")
        return True, None
    chain.append(f"{years} years from {start} ({where}, counted {rule}) run to {day}")
    return False, day
