"""The format policy (policies/formats.yaml): risk, action and migration pathway per format.

A rule matches a file by its PRONOM PUID, or by its MIME type where siegfried
named no PUID. A migration rule names its target (the PUIDs siegfried must give
the derivative), a pathway (a tool and its arguments, run under a timeout and a
memory limit) and the checks that must prove the content survived. The file is
checked on load: a typo is named with its file and line, before any work starts,
never discovered halfway through a migration.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from preserve.domain.schema import FORMATS as FORMATS_KEYS
from preserve.domain.schema import check_keys, read_yaml
from preserve.errors import ConfigError

RISKS = ("low", "medium", "high")
MAX_TIMEOUT = 7 * 24 * 3600   # seconds a tool may run: far above any real conversion
MAX_MEMORY_MB = 1 << 20       # 1 TiB: RLIMIT_AS beyond any machine's memory
ACTIONS = ("keep", "migrate", "review")
# What may be asked to hold between a source and its derivative (see formats.yaml).
CHECKS = ("pixels", "samples", "frames", "pdfa", "pages", "text", "render", "images")
PDFA_LEVELS = ("1b", "2b", "3b")
# What a pathway's arguments may name: the file to read, the file or folder to write, a
# private working folder, a PDF/A definition file made for Ghostscript, and a LibreOffice
# profile of the run's own.
PLACEHOLDERS = ("input", "output", "outdir", "workdir", "pdfa_def", "profile")
PLACEHOLDER_RE = re.compile(r"\{([a-z_]+)\}")
PUID_RE = re.compile(r"^(x-)?fmt/[0-9]+$")
EXTENSION_RE = re.compile(r"^[a-z0-9]{1,10}$")


@dataclass(frozen=True)
class Pathway:
    name: str
    tool: str                # the executable, found on PATH
    args: tuple[str, ...]
    timeout_seconds: float = 600
    memory_mb: int = 2048
    then: str | None = None  # a pathway that takes this one's output as its input


@dataclass(frozen=True)
class Target:
    puids: tuple[str, ...]
    extension: str
    pdfa: str | None = None  # the PDF/A level the pdfa check asks for


@dataclass(frozen=True)
class FormatRule:
    name: str
    risk: str
    action: str
    puids: tuple[str, ...] = ()
    mime: tuple[str, ...] = ()
    target: Target | None = None
    pathway: str | None = None
    checks: tuple[str, ...] = ()
    text_similarity: float = 1.0
    render_tolerance: float = 0.0  # share of a page's pixels that may differ when rendered
    line: int = 0
    fallback: tuple[str, ...] = ()  # pathways tried in order when the one before is refused
    # Containers that hold video or sound alone under one PUID (ASF: WMV and WMA): "video",
    # the rule takes only files with a video stream; "audio", only those without one.
    streams: str | None = None

    @property
    def pathways(self) -> tuple[str, ...]:
        """Every pathway the rule may use, in the order they are tried."""
        return ((self.pathway,) if self.pathway else ()) + self.fallback


@dataclass
class FormatPolicy:
    source: str
    rules: list[FormatRule] = field(default_factory=list)
    pathways: dict[str, Pathway] = field(default_factory=dict)

    def __post_init__(self) -> None:
        plain = [r for r in self.rules if r.streams != "audio"]
        sound = [r for r in self.rules if r.streams == "audio"]
        self._by_puid = {p: r for r in reversed(plain) for p in r.puids}
        self._by_mime = {m: r for r in reversed(plain) for m in r.mime}
        self._sound_by_puid = {p: r for r in reversed(sound) for p in r.puids}
        self._sound_by_mime = {m: r for r in reversed(sound) for m in r.mime}

    def chain(self, name: str) -> list[Pathway]:
        """A pathway and those it hands its output on to, in order."""
        out = [self.pathways[name]]
        while out[-1].then is not None:
            out.append(self.pathways[out[-1].then])
        return out

    def rule_for(self, puid: str | None, mime: str | None,
                 streams: frozenset[str] | None = None) -> FormatRule | None:
        """The rule for a file: by PUID; by MIME type only where siegfried named none. A
        rule for video alone (`streams: video`) gives way, for a file whose `streams`
        (the kinds ffprobe names: "audio", "video"...) hold no video, to the rule for the
        same format holding sound alone (issue 22: a WMA, which siegfried may name as the
        ASF container, fell under the video rule and failed to migrate on every run)."""
        key = (mime or "").split(";")[0].strip()
        rule = self._by_puid.get(puid) if puid else self._by_mime.get(key)
        if rule is not None and rule.streams == "video" and streams is not None \
                and "video" not in streams:
            return self._sound_by_puid.get(puid) if puid else self._sound_by_mime.get(key)
        return rule


def load_format_policy(path: Path) -> FormatPolicy:
    text, data = read_yaml(path, "the format policy")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping with 'pathways' and 'rules'")
    check_keys(text, FORMATS_KEYS, path)
    lines = _lines(text)
    pathways = {}
    raw = data.get("pathways") or {}
    _need(isinstance(raw, dict), path, lines, "pathways", "must be a mapping of names")
    for name, item in raw.items():
        pathways[str(name)] = _pathway(str(name), item, path, lines)
    for name, pathway in pathways.items():
        chain = [name]
        while pathway.then is not None:
            _need(pathway.then in pathways and pathway.then not in chain, path, lines,
                  f"pathways.{chain[-1]}.then", f"must name another pathway of this file, "
                  f"without coming back ({' -> '.join([*chain, pathway.then])})")
            chain.append(pathway.then)
            pathway = pathways[pathway.then]
    rules: list[FormatRule] = []
    seen: dict[tuple[str, bool], str] = {}  # (PUID, for sound alone) -> rule
    items = data.get("rules") or []
    _need(isinstance(items, list), path, lines, "rules", "must be a list of rules")
    for i, item in enumerate(items):
        rule = _rule(item, f"rules[{i}]", path, lines, pathways)
        for puid in rule.puids:
            key = (puid, rule.streams == "audio")
            _need(key not in seen, path, lines, f"rules[{i}].puids",
                  f"lists {puid}, which rule '{seen.get(key)}' already has (a format has "
                  "one rule, and one more for sound alone)")
            seen[key] = rule.name
        rules.append(rule)
    video = {p for r in rules if r.streams == "video" for p in r.puids}
    for i, rule in enumerate(rules):
        stray = [p for p in rule.puids if p not in video] if rule.streams == "audio" else []
        _need(not stray, path, lines, f"rules[{i}].streams",
              f"is audio, but no rule with 'streams: video' has {', '.join(stray)}: this "
              "rule would never apply")
    return FormatPolicy(str(path), rules, pathways)


def _pathway(name: str, item, path: Path, lines: dict) -> Pathway:
    where = f"pathways.{name}"
    _need(isinstance(item, dict), path, lines, where, "must be a mapping (tool, args, ...)")
    tool = item.get("tool")
    _need(isinstance(tool, str) and tool.strip() and "/" not in tool, path, lines,
          f"{where}.tool", "must be the name of a program on PATH")
    args = item.get("args")
    _need(isinstance(args, list) and args and all(isinstance(a, str) for a in args), path,
          lines, f"{where}.args", "must be a non-empty list of strings")
    named = {m for a in args for m in PLACEHOLDER_RE.findall(a)}
    unknown = sorted(named - set(PLACEHOLDERS))
    _need(not unknown, path, lines, f"{where}.args",
          f"names {{{unknown[0] if unknown else ''}}}; the placeholders are "
          + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS))
    _need("input" in named and ({"output", "outdir"} & named), path, lines, f"{where}.args",
          "must name {input} and {output} (or {outdir}, for tools that choose the file name)")
    timeout = item.get("timeout_seconds", 600)
    _need(_number(timeout) and 0 < timeout <= MAX_TIMEOUT, path, lines,
          f"{where}.timeout_seconds", f"must be a number of seconds above 0 and at most "
          f"{MAX_TIMEOUT:,} (7 days)")
    memory = item.get("memory_mb", 2048)
    _need(_number(memory) and isinstance(memory, int) and 64 <= memory <= MAX_MEMORY_MB,
          path, lines, f"{where}.memory_mb",
          f"must be a whole number of MiB, from 64 to {MAX_MEMORY_MB:,} (1 TiB)")
    then = item.get("then")
    _need(then is None or isinstance(then, str), path, lines, f"{where}.then",
          "must name another pathway")
    return Pathway(name, tool.strip(), tuple(args), float(timeout), memory, then)


def _rule(item, where: str, path: Path, lines: dict, pathways: dict) -> FormatRule:
    _need(isinstance(item, dict), path, lines, where, "must be a mapping")
    name = item.get("name")
    _need(isinstance(name, str) and name.strip(), path, lines, f"{where}.name",
          "must name the format")
    puids, mime = item.get("puids") or [], item.get("mime") or []
    _need(isinstance(puids, list) and all(isinstance(p, str) and PUID_RE.match(p)
                                          for p in puids), path, lines, f"{where}.puids",
          "must be a list of PRONOM PUIDs such as fmt/353 or x-fmt/392")
    _need(isinstance(mime, list) and all(isinstance(m, str) and "/" in m for m in mime), path,
          lines, f"{where}.mime", "must be a list of MIME types such as image/bmp")
    _need(bool(puids or mime), path, lines, where, "must list puids or mime types")
    risk = item.get("risk")
    _need(risk in RISKS, path, lines, f"{where}.risk",
          f"must be one of {', '.join(RISKS)} (found {risk!r})")
    action = item.get("action")
    _need(action in ACTIONS, path, lines, f"{where}.action",
          f"must be one of {', '.join(ACTIONS)} (found {action!r})")
    streams = item.get("streams")
    _need(streams in (None, "video", "audio"), path, lines, f"{where}.streams",
          "must be video (files with a video stream) or audio (files without one)")
    rule = FormatRule(name.strip(), risk, action, tuple(puids), tuple(mime),
                      line=lines.get(where, 0), streams=streams)
    if action != "migrate":
        for key in ("target", "pathway", "fallback", "checks"):
            _need(key not in item, path, lines, f"{where}.{key}",
                  f"is only for action: migrate (this rule's action is {action})")
        return rule
    target = item.get("target")
    _need(isinstance(target, dict), path, lines, f"{where}.target",
          "must give the derivative's puids and extension")
    tpuids = target.get("puids")
    _need(isinstance(tpuids, list) and tpuids and all(isinstance(p, str) and PUID_RE.match(p)
                                                      for p in tpuids), path, lines,
          f"{where}.target.puids", "must list the PRONOM PUIDs the derivative may have")
    extension = target.get("extension")
    _need(isinstance(extension, str) and EXTENSION_RE.match(extension), path, lines,
          f"{where}.target.extension", "must be a file extension without the dot, such as png")
    pdfa = target.get("pdfa")
    _need(pdfa is None or pdfa in PDFA_LEVELS, path, lines, f"{where}.target.pdfa",
          f"must be one of {', '.join(PDFA_LEVELS)}")
    pathway = item.get("pathway")
    _need(pathway in pathways, path, lines, f"{where}.pathway",
          f"must name a pathway of this file ({', '.join(pathways) or 'none defined'})")
    fallback = item.get("fallback", [])
    _need(isinstance(fallback, list) and all(p in pathways and p != pathway for p in fallback)
          and len(set(fallback)) == len(fallback), path, lines, f"{where}.fallback",
          "must list other pathways of this file, each once, tried in order when the one "
          "before is refused")
    checks = item.get("checks")
    _need(isinstance(checks, list) and checks and all(c in CHECKS for c in checks)
          and len(set(checks)) == len(checks), path, lines, f"{where}.checks",
          f"must list what proves the content survived, drawn from {', '.join(CHECKS)}")
    _need("pdfa" not in checks or pdfa, path, lines, f"{where}.target.pdfa",
          "must give the PDF/A level (2b, say) the pdfa check asks for")
    similarity = item.get("text_similarity", 1.0)
    _need(isinstance(similarity, int | float) and 0 < similarity <= 1, path, lines,
          f"{where}.text_similarity", "must be a share above 0 and at most 1")
    tolerance = item.get("render_tolerance", 0.0)
    _need(isinstance(tolerance, int | float) and 0 <= tolerance < 1, path, lines,
          f"{where}.render_tolerance", "must be a share from 0 to below 1")
    return FormatRule(rule.name, risk, action, rule.puids, rule.mime,
                      Target(tuple(tpuids), extension, pdfa), pathway, tuple(checks),
                      float(similarity), float(tolerance), rule.line, tuple(fallback),
                      streams)


def _number(value) -> bool:
    """A real, finite number: `true` is no number of seconds (case 48: it was taken as 1),
    nor are .inf and .nan (a timer of .inf seconds broke the watchdog)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and \
        math.isfinite(value)


def _need(cond: bool, file: Path, lines: dict, key: str, message: str) -> None:
    if not cond:
        line = lines.get(key) or lines.get(key.rsplit(".", 1)[0]) or 0
        where = f"{file}:{line}" if line else str(file)
        raise ConfigError(f"{where}: '{key}' {message}",
                          hint="fix the format policy and re-run")


def _lines(text: str) -> dict[str, int]:
    """The line (1-based) of each key of the file, spelled as errors spell it."""
    out: dict[str, int] = {}

    def walk(node, where: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                name = f"{where}.{key.value}" if where else str(key.value)
                out[name] = key.start_mark.line + 1
                walk(value, name)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                out[f"{where}[{i}]"] = item.start_mark.line + 1
                walk(item, f"{where}[{i}]")

    walk(yaml.compose(text), "")
    return out
