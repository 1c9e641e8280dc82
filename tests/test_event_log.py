"""The tamper-evident event log (issue 24): RFC 9162 hashing, signed C2SP checkpoints, and
`log verify` naming every edit, insertion, removal, reordering and truncation of the
copies in storage and of the objects' logs/."""

from __future__ import annotations

import json
import os
import random
import re
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from preserve.domain import checkpoint as notes
from preserve.domain.merkle import EMPTY_ROOT, MerkleTree, leaf_hash, root_of
from preserve.ingest.ingest import Metadata, ingest
from preserve.repository import Repository
from preserve.storage.audit import audit
from preserve.storage.history import ENTRIES, LOG_DIR, publish
from preserve.storage.log_check import verify
from tests.conftest import two_disk_repo
from tests.test_cli import run

# Certificate Transparency's test vectors for RFC 6962/9162 tree hashing (the same in
# both): the leaves, and the root of the first n of them.
LEAVES = [b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43",
          bytes(range(0x50, 0x58)), bytes(range(0x60, 0x70))]
ROOTS = ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
         "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
         "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
         "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
         "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
         "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
         "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
         "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]


def test_tree_hashing_matches_the_rfc_test_vectors():
    assert root_of([]) == EMPTY_ROOT
    for n, root in enumerate(ROOTS, 1):
        assert root_of(LEAVES[:n]).hex() == root


def _reference_root(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 as written: split at the largest power of two below n."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    import hashlib
    return hashlib.sha256(b"\x01" + _reference_root(leaves[:k])
                          + _reference_root(leaves[k:])).digest()


@given(st.lists(st.binary(max_size=8), min_size=1, max_size=70), st.data())
def test_a_tree_resumed_from_its_frontier_gives_the_definition_s_root(entries, data):
    cut = data.draw(st.integers(0, len(entries)))
    first = MerkleTree()
    for e in entries[:cut]:
        first.append(leaf_hash(e))
    tree = MerkleTree.resume(first.size, first.frontier)
    for e in entries[cut:]:
        tree.append(leaf_hash(e))
    assert tree.root() == _reference_root([leaf_hash(e) for e in entries])


def test_a_checkpoint_verifies_with_its_key_only():
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    name = notes.key_name(key.public_key())
    text = notes.sign(notes.Checkpoint(name, 7, bytes(range(32))), key)
    lines = text.split("\n")
    assert lines[:2] == [name, "7"] and lines[3] == "" and lines[4].startswith("\u2014 " + name)
    assert notes.verify(text, key.public_key()) == notes.Checkpoint(name, 7, bytes(range(32)))
    with pytest.raises(notes.CheckpointError):
        notes.verify(text, other.public_key())
    with pytest.raises(notes.CheckpointError):  # the size changed under the signature
        notes.verify(text.replace("\n7\n", "\n8\n", 1), key.public_key())
    with pytest.raises(notes.CheckpointError):
        notes.verify("not a checkpoint", key.public_key())


# -- the log of a real repository --------------------------------------------------------------

def _repository(tmp_path: Path, collection: Path, aips: int = 3, audits: int = 3) -> Repository:
    """AIPs kept at two locations, audited `audits` times (a fixity event per copy each
    time, in its object's logs/ at that location), the log signed and copied."""
    repo = two_disk_repo(tmp_path)
    for n in range(aips):
        ingest(repo, collection, Metadata(f"Parish {n}"))
    for _ in range(audits):
        audit(repo)
    publish(repo)
    return repo


def test_every_event_is_logged_signed_and_copied_to_every_location(tmp_path, collection):
    repo = _repository(tmp_path, collection, aips=2, audits=1)
    events = repo.catalog.execute("SELECT COUNT(*) FROM events").scalar()
    report = verify(repo)
    assert report.status == "ok", report.problems
    logged = [json.loads(t) for _, t in repo.catalog.log_entries()]
    assert report.size == len(logged) and report.documents == 4  # 2 AIPs x 2 locations
    assert sum(1 for e in logged if e["kind"] == "event") == events
    # what a rebuild needs besides the events: each copy stored and audited, each run
    assert {e["kind"] for e in logged} == {"event", "replica", "audit-run"}
    kept = [row[2] for row in repo.catalog.log_checkpoints()]
    for name in ("local", "disk2"):
        root = repo.locations[name].root / LOG_DIR
        entries = "".join(p.read_text() for p in sorted((root / "entries").iterdir()))
        assert [json.loads(line)["n"] for line in entries.splitlines()] == list(
            range(1, len(logged) + 1))
        assert [p.read_text() for p in sorted((root / "checkpoints").iterdir())] == kept
    key = repo.log_key_path
    assert key.is_file() and (key.stat().st_mode & 0o777) == 0o600
    assert not str(key).startswith(str(repo.locations["local"].root))
    # an entry names a version event's inventory, a logs/ event's document, by digest
    entries = [json.loads(t) for _, t in repo.catalog.log_entries()]
    assert {e["record"]["file"] for e in entries if e.get("type") == "ingestion"} == {
        "v1/inventory.json"}
    fixity = [e for e in entries if e.get("type") == "fixity check"]
    assert len(fixity) == 4 and all(e["record"]["file"].startswith("logs/") and
                                    len(e["record"]["sha256"]) == 64 for e in fixity)


def _log_lines(repo, location: str) -> list[tuple[Path, int]]:
    out = []
    for segment in sorted((repo.locations[location].root / ENTRIES).iterdir()):
        out += [(segment, i) for i in range(len(segment.read_text().splitlines()))]
    return out


def _rewrite(path: Path, lines: list[str]) -> None:
    os.chmod(path, 0o644)
    path.write_text("".join(line + "\n" for line in lines))


def _documents(repo, location: str) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for path in sorted(repo.locations[location].root.glob("**/logs/*.xml")):
        out.setdefault(str(path.parent), []).append(path)
    return out


class Mutator:
    """One random change of the kind asked to the stored history (a copy of the log, or
    an object's logs/), undone by restore()."""

    def __init__(self, repo: Repository, rng: random.Random):
        self.repo, self.rng = repo, rng
        self.roots = [repo.locations[n].root for n in ("local", "disk2")]
        self.saved = self._snapshot()

    def _files(self) -> list[Path]:
        out = []
        for root in self.roots:
            out += [p for p in (root / LOG_DIR).rglob("*") if p.is_file()]
            out += list(root.glob("**/logs/*.xml"))
        return out

    def _snapshot(self) -> dict[Path, bytes]:
        return {p: p.read_bytes() for p in self._files()}

    def restore(self) -> None:
        for path in self._files():
            if path not in self.saved:
                path.unlink()
        for path, data in self.saved.items():
            if not path.exists() or path.read_bytes() != data:
                if path.exists():
                    os.chmod(path, 0o644)
                path.write_bytes(data)

    def mutate(self, target: str, kind: str) -> None:
        location = self.rng.choice(["local", "disk2"])
        if target == "log":
            self._mutate_log(location, kind)
        else:
            self._mutate_documents(location, kind)

    def _mutate_log(self, location: str, kind: str) -> None:
        segments = sorted((self.repo.locations[location].root / ENTRIES).iterdir())
        lines = [(s, line) for s in segments for line in s.read_text().splitlines()]
        texts = [t for _, t in lines]
        if kind == "edited":
            i = self.rng.randrange(len(texts))
            entry = json.loads(texts[i])
            field = "detail" if "detail" in entry else "kind"
            entry[field] = entry[field] + self.rng.choice([" ", "x", "."])
            texts[i] = json.dumps(entry, sort_keys=True, separators=(",", ":"),
                                  ensure_ascii=False)
        elif kind == "inserted":
            forged = json.loads(self.rng.choice(texts))
            forged["id"] = str(uuid.uuid4())
            texts.insert(self.rng.randrange(len(texts) + 1),
                         json.dumps(forged, sort_keys=True, separators=(",", ":")))
        elif kind == "removed":
            del texts[self.rng.randrange(len(texts) - 1)]  # not the last: that is truncation
        elif kind == "reordered":
            i = self.rng.randrange(len(texts) - 1)
            j = self.rng.randrange(i + 1, min(len(texts), i + 4))
            texts[i], texts[j] = texts[j], texts[i]
        elif kind == "truncated":
            del texts[len(texts) - self.rng.randint(1, 5):]
        elif kind == "checkpoint":
            checkpoints = sorted((self.repo.locations[location].root / LOG_DIR /
                                  "checkpoints").iterdir())
            path = self.rng.choice(checkpoints)
            lines_ = path.read_text().split("\n")
            lines_[self.rng.choice([1, 2])] = self.rng.choice(["99", "AAAA" + lines_[2][4:]])
            _rewrite(path, lines_[:-1])
            return
        # written back in the same segments: the lines redistributed in order
        sizes = [sum(1 for s, _ in lines if s == seg) for seg in segments]
        start = 0
        for n, seg in enumerate(segments):
            count = sizes[n] if n < len(segments) - 1 else len(texts) - start
            _rewrite(seg, texts[start:start + count])
            start += count

    def _mutate_documents(self, location: str, kind: str) -> None:
        """In one object's logs/, its documents in the order they were logged (their names
        begin with the second they were made: several share one)."""
        position = {json.loads(t)["id"]: n for n, t in self.repo.catalog.log_entries()}
        folder = sorted(self.rng.choice(sorted(_documents(self.repo, location).values())),
                        key=lambda p: position[p.name[-40:-4]])
        if kind == "edited":
            path = self.rng.choice(folder)
            data = path.read_text()
            at = self.rng.randrange(len(data))
            os.chmod(path, 0o644)
            path.write_text(data[:at] + ("Z" if data[at] != "Z" else "Y") + data[at + 1:])
        elif kind == "inserted":
            source = self.rng.choice(folder)
            name = re.sub(r"[0-9a-f-]{36}\.xml$", f"{uuid.uuid4()}.xml", source.name)
            (source.parent / name).write_bytes(source.read_bytes())
        elif kind == "removed":
            self.rng.choice(folder[:-1]).unlink()  # not the newest: that is truncation
        elif kind == "reordered":
            a, b = self.rng.sample(folder, 2)
            data_a, data_b = a.read_bytes(), b.read_bytes()
            for path, data in ((a, data_b), (b, data_a)):
                os.chmod(path, 0o644)
                path.write_bytes(data)
        elif kind == "truncated":
            folder[-1].unlink()


KINDS = ("edited", "inserted", "removed", "reordered", "truncated")


@pytest.mark.slow
def test_a_thousand_random_mutations_are_each_found_and_named(tmp_path, collection):
    repo = _repository(tmp_path, collection)
    assert verify(repo).problems == []
    rng = random.Random(20261203)
    mutator = Mutator(repo, rng)
    plan = [(t, k) for t in ("log", "documents") for k in KINDS] + [("log", "checkpoint")]
    for n in range(1100):
        target, kind = plan[n % len(plan)]
        mutator.mutate(target, kind)
        found = verify(repo).problems
        assert kind in {p.kind for p in found}, (n, target, kind, found)
        if kind != "checkpoint":  # named: the entry (and its AIP, but an audit run's)
            named = [p for p in found if p.kind == kind]
            assert all(p.event and (p.aip or target == "log") for p in named), named
        mutator.restore()
        if n % 50 == 0:  # and nothing is reported where nothing changed
            assert verify(repo).problems == [], n


def test_each_kind_of_change_is_named_with_its_aip_and_event(tmp_path, collection):
    repo = _repository(tmp_path, collection, aips=2, audits=3)
    mutator = Mutator(repo, random.Random(7))
    for target in ("log", "documents"):
        for kind in KINDS:
            mutator.mutate(target, kind)
            found = [p for p in verify(repo).problems if p.kind == kind]
            assert found and all(p.event and (p.aip or target == "log") for p in found), (
                target, kind)
            mutator.restore()
    assert verify(repo).problems == []


def test_a_rewritten_catalog_is_caught_by_its_checkpoints_and_a_kept_one(tmp_path, collection):
    repo = _repository(tmp_path, collection, aips=1, audits=1)
    printed = run(repo.root, "log", "checkpoint")
    assert "Keep this text" in printed.stderr
    (tmp_path / "kept.txt").write_text(printed.stdout)  # the signed note, nothing else
    run(repo.root, "log", "verify", "--against", tmp_path / "kept.txt")
    # someone who can write the catalog, the storage and has the key rewrites an event:
    # the history is signed anew and every copy agrees; only the kept checkpoint knows
    with repo.catalog.transaction() as db:
        position, text = db.execute("SELECT position, entry FROM log_entries ORDER BY "
                                    "position LIMIT 1").fetchone()
        db.execute("UPDATE log_entries SET entry = ? WHERE position = ?",
                   (text.replace('"success"', '"failure"'), position))
    report = verify(repo)
    assert {p.kind for p in report.problems} >= {"checkpoint"}
    assert any(p.where == "catalog" for p in report.problems)
    proc = run(repo.root, "log", "verify", "--against", tmp_path / "kept.txt", "--json",
               check_code=1)
    assert any(p["where"] == "kept checkpoint" and p["kind"] == "edited"
               for p in json.loads(proc.stdout)["problems"])


def test_events_recorded_by_any_command_are_signed_when_it_ends(tmp_path, collection):
    root = tmp_path / "repo"
    run(root, "init")
    run(root, "ingest", "-c", "Parish", collection)
    run(root, "audit")
    repo = Repository(root)
    assert repo.catalog.unlogged_events() == 0
    checkpoints = sorted((root / "aips" / LOG_DIR / "checkpoints").iterdir())
    assert len(checkpoints) == 2  # one a run
    done = json.loads(run(root, "log", "verify", "--json").stdout)
    assert done["status"] == "ok" and done["size"] == repo.catalog.execute(
        "SELECT COUNT(*) FROM log_entries").scalar() > repo.catalog.execute(
        "SELECT COUNT(*) FROM events").scalar()
    printed = json.loads(run(root, "log", "checkpoint", "--json").stdout)
    assert printed["size"] == done["size"] and printed["root"] == done["root"]


def test_an_audit_checks_the_history_of_what_it_reads(tmp_path, collection):
    repo = _repository(tmp_path, collection, aips=1, audits=2)
    assert audit(repo).problems == []  # its own new documents are not "inserted" ones
    publish(repo)
    documents = sorted(repo.locations["disk2"].root.glob("**/logs/*.xml"))
    os.chmod(documents[0], 0o644)
    documents[0].write_text(documents[0].read_text().replace("success", "failure"))
    found = audit(repo).problems
    assert [(p.location, p.kind, p.path) for p in found] == [
        ("disk2", "history-edited", "logs/" + documents[0].name)]
    assert json.loads(run(repo.root, "audit", "--json", check_code=1).stdout)["problems"]


# -- where each location holds the log up to (issue 29) ----------------------------------------

def _listed(monkeypatch) -> list[tuple[str, str | None, int]]:
    """(prefix, after, keys given) of every listing of a disk location from now on."""
    from preserve.stores.local import LocalStorage

    calls: list = []
    keep = LocalStorage.list

    def counted(self, prefix, after=None):
        found = list(keep(self, prefix, after))
        calls.append((prefix, after, len(found)))
        return iter(found)

    monkeypatch.setattr(LocalStorage, "list", counted)
    return calls


def _checkpointed(tmp_path: Path, collection: Path, commands: int) -> Repository:
    """A repository whose log has a checkpoint for each of `commands` audits."""
    repo = _repository(tmp_path, collection, aips=1, audits=0)
    for _ in range(commands):
        audit(repo)
        publish(repo)
    return repo


def test_a_command_lists_each_copy_of_the_log_from_where_it_held_it(tmp_path, collection,
                                                                    monkeypatch):
    """A command's events are copied to every location at its end: the log was listed
    whole first (a page per 500 checkpoints, each a round trip to an object store, for
    years of commands). Now only from the last segment and checkpoint each location was
    found holding, which proves it still holds them."""
    repo = _checkpointed(tmp_path, collection, 5)
    held = len(repo.catalog.log_checkpoints())
    assert held == 6 and all(repo.catalog.log_copied(n) == repo.catalog.log_size()
                             for n in ("local", "disk2"))
    calls = _listed(monkeypatch)
    audit(repo)
    publish(repo)
    of_log = [c for c in calls if c[0].startswith(LOG_DIR)]
    assert of_log and all(after is not None for _, after, _ in of_log), of_log
    assert sum(n for _, _, n in of_log) == 2 * 2  # per location: its last segment, checkpoint
    assert verify(repo).status == "ok"
    for name in ("local", "disk2"):
        assert len(list((repo.locations[name].root / LOG_DIR / "checkpoints").iterdir())) \
            == held + 1
        assert repo.catalog.log_copied(name) == repo.catalog.log_size()


def test_a_location_that_lost_its_copy_of_the_log_gets_it_whole_again(tmp_path, collection):
    """The location no longer holds what the catalog says it did (emptied, or another disk
    in its place: issue 22): found at the next command, which copies the log whole."""
    import shutil

    repo = _checkpointed(tmp_path, collection, 2)
    shutil.rmtree(repo.locations["disk2"].root / LOG_DIR)
    audit(repo)
    publish(repo)
    assert verify(repo).status == "ok"
    assert {p.name for p in (repo.locations["disk2"].root / ENTRIES).iterdir()} == {
        p.name for p in (repo.locations["local"].root / ENTRIES).iterdir()}


def test_a_segment_lost_behind_the_mark_is_named_then_copied_again(tmp_path, collection):
    """What a command does not list (the segments before the last one a location held) is
    what `log verify` reads: a segment found missing there makes the next command list
    that location whole and copy it again."""
    repo = _checkpointed(tmp_path, collection, 3)
    oldest = sorted((repo.locations["disk2"].root / ENTRIES).iterdir())[0]
    os.chmod(oldest, 0o644)
    oldest.unlink()
    audit(repo)
    publish(repo)
    assert not oldest.exists()  # not listed: the mark's segment was there
    report = verify(repo)
    assert {p.kind for p in report.problems} == {"removed"}, report.problems
    assert repo.catalog.log_copied("disk2") is None
    audit(repo)
    publish(repo)
    assert oldest.exists() and verify(repo).status == "ok"
