"""Which keys a policy or location file may hold, checked with the file and line.

A misspelled key was silently ignored and its default used (red-team case 68: an
`interval_day: 1` audited every 90 days; case 69: an `endpont_url` typo sent a
location to AWS with the caller's credentials). Every key is now checked against
what preserve reads, and an unknown one is refused with its line and the nearest
valid key.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import yaml

from preserve.errors import ConfigError

# A schema maps each key to the schema of its value: None for a plain value, a dict for a
# mapping, a one-item list for a list of mappings.
Schema = dict

_AUDIT_RULE = {"interval_days": None, "kind": None}
POLICY: Schema = {
    "name": None,
    "description": None,
    "fixity": {
        "manifest_algorithms": None,
        "audit": {**_AUDIT_RULE, "sample": None, "budget_bytes": None, "budget_seconds": None,
                  "overrides": [{**_AUDIT_RULE, "collection": None, "location": None}]},
    },
    "replication": {"copies": None, "locations": None},
    "media": {"service_life_years": {"*": None}, "warn_at": None},
    "ingest": {"links": None, "special_files": None, "case_collisions": None,
               "archive_max_ratio": None, "validate": None, "virus": None,
               "virus_database": None, "virus_database_max_age_days": None},
    "text": {"extract": None, "languages": None, "collections": {"*": None}},
    "rights": {"without_statement": None,
               "public_after": {"years": None, "from": None, "counting": None}},
    "access": {"copies": {"documents": None, "images": None, "sound": None, "video": None},
               "masters": None, "closed_items": None},
}
_PATHWAY = {"tool": None, "args": None, "timeout_seconds": None, "memory_mb": None,
            "then": None, "description": None}
FORMATS: Schema = {
    "pathways": {"*": _PATHWAY},
    "rules": [{"name": None, "puids": None, "mime": None, "risk": None, "action": None,
               "target": {"puids": None, "extension": None, "pdfa": None}, "pathway": None,
               "fallback": None,
               "checks": None, "text_similarity": None, "render_tolerance": None,
               "streams": None, "note": None}],
}
_LOCATION = {"name": None, "kind": None, "media": None, "commissioned": None,
             "expected_lifetime_years": None, "device": None,
             "retired": None, "retired_to": None, "site": None, "role": None}
LOCATION: dict[str, Schema] = {
    "local": {**_LOCATION, "path": None},
    "s3": {**_LOCATION, "bucket": None, "prefix": None, "endpoint_url": None, "region": None,
           "addressing_style": None, "storage_class": None, "checksum": None, "profile": None,
           "max_attempts": None, "connect_timeout": None, "read_timeout": None,
           "concurrency": None, "multipart_threshold": None,
           "object_lock": {"mode": None, "days": None}},
}


# libyaml's parser where PyYAML was built with it (Debian's and PyPI's wheels are): the
# pure-Python one took 20 ms of every command's start, and of every job a worker runs.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str, file: Path | str = "the file"):
    """yaml.safe_load, with libyaml when there, of a file people write by hand, refusing
    with the line what YAML allows but a configuration must not hold (red-team 2026-12):
    an alias (case 49: nine lines of aliases nested nine deep expand to 10^9 values and
    exhausted memory; no preserve file needs one), and a key given twice in one mapping
    (case 50: `copies: 2` then `copies: 1` silently kept 1)."""
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.AliasEvent):
            raise ConfigError(f"{file}:{event.start_mark.line + 1}: an alias (*{event.anchor}) "
                              "refers to an anchor; preserve's files take plain values only",
                              hint="write the value out where the alias stands")
    _no_duplicate_keys(yaml.compose(text, Loader=_LOADER), file)
    return yaml.load(text, Loader=_LOADER)


def _no_duplicate_keys(root, file: Path | str) -> None:
    stack = [root] if root is not None else []
    while stack:  # a tree (aliases were refused): every node is visited once
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key, value in node.value:
                name = str(key.value)
                if name in seen:
                    raise ConfigError(f"{file}:{key.start_mark.line + 1}: the key '{name}' is "
                                      f"given again (first on line {seen[name]}); which one "
                                      "is meant cannot be told", hint="keep one of them")
                seen[name] = key.start_mark.line + 1
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def read_yaml(path: Path, what: str) -> tuple[str, object]:
    """A configuration file's text and data; a missing file or bad YAML said with its
    name (`what`: how the message names it)."""
    try:
        text = path.read_text(encoding="utf-8")
        return text, load_yaml(text, path) or {}
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} is missing",
                          hint="run 'preserve init' to install the default policies") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from e


def check_keys(text: str, schema: Schema, file: Path, *, ignore: tuple[str, ...] = ()) -> None:
    """Raise ConfigError at the first key `schema` does not know (`ignore`: keys another
    check reports better, such as secrets)."""
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError as e:
        raise ConfigError(f"{file} is not valid YAML: {e}") from e
    if node is not None:
        _check(node, schema, file, "", ignore)


def _check(node, schema, file: Path, where: str, ignore: tuple[str, ...]) -> None:
    if isinstance(schema, list) and isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check(item, schema[0], file, f"{where.rstrip('.')}[{i}].", ignore)
        return
    if not isinstance(schema, dict) or not isinstance(node, yaml.MappingNode):
        return  # a value of the wrong shape is reported by the loader, with its meaning
    for key_node, value_node in node.value:
        key = str(key_node.value)
        if key in ignore:
            continue
        if key not in schema and "*" not in schema:  # "*": names of the user's choosing
            nearest = difflib.get_close_matches(key, list(schema), n=1, cutoff=0.6)
            raise ConfigError(
                f"{file}:{key_node.start_mark.line + 1}: unknown key '{where}{key}'"
                + (f"; did you mean '{where}{nearest[0]}'?" if nearest else ""),
                hint=f"the keys known here are: {', '.join(schema)}")
        value_schema = schema.get(key, schema.get("*"))
        if value_schema is not None:
            _check(value_node, value_schema, file, f"{where}{key}.", ignore)
