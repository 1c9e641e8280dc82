"""Replication across a link with latency (issue 29): preserve against the tools an
archivist would otherwise pick, side by side in one sitting, through the same relay.

    .venv/bin/python benchmarks/replicate_wan.py [--rtt 0,10,40] [--files 1000]
        [--only small|large] [--aws PATH] [--audit] [--many N] [--repeat N]
        [--repair N | --repair-store N | --log N]

moto's server on loopback, behind benchmarks/latency_proxy.py (each direction delayed by
half the round trip). On the same data (small: FILES files of 1-64 KiB, from
replicate.py's corpus; large: 8 x 128 MiB), each through the relay:
  preserve      `preserve replicate --to wan` (location concurrency 16: its default)
  loop          boto3 upload_file, one file after another
  aws           `aws s3 sync` (awscli from PyPI, in its own venv), its defaults (10
                requests at once) and with 16
  rclone        `rclone copy --checksum` (Debian's rclone), its defaults (4 transfers)
                and with 16
  preserve, before  (--before CHECKOUT) an earlier commit's, on a copy of the repository
Requests: what moto's access log counts for each run (every request any tool made).
preserve also writes the bag's tag files and OCFL inventories (a few more objects), and
verifies every object; the others upload the files only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import WORK, timed  # noqa: E402
from latency_proxy import LatencyRelay  # noqa: E402
from replicate import ENV, PY, free_port, make_source  # noqa: E402

SAME = 16  # preserve's default concurrency: the peers are run with it too
CONCURRENCY = 16  # preserve's (--concurrency)
PEERS = True
SKIP_LOOP = False
AUDIT = False
BEFORE: Path | None = None  # another checkout of preserve, run beside this one (--before)


def subset(kind: str, files: int) -> Path:
    source = make_source(kind)
    if kind == "large":
        return source
    target = WORK / f"replicate-small-{files}"
    if not (target / ".complete").exists():
        shutil.rmtree(target, ignore_errors=True)
        chosen = sorted(p for p in source.rglob("*") if p.is_file() and p.name != ".complete")
        for p in chosen[:files]:
            dest = target / p.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, dest)
        (target / ".complete").write_text("ok")
    return target


class Server:
    def __init__(self, env: dict):
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - the server writes it
            prefix="moto-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([PY, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                                      str(self.port)], env=env, stdout=self.log,
                                     stderr=self.log)
        self.s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.port}",
                               region_name="us-east-1", aws_access_key_id="bench",
                               aws_secret_access_key="bench")
        for _ in range(100):
            try:
                self.s3.list_buckets()
                break
            except Exception:
                time.sleep(0.1)

    def requests(self) -> int:
        with open(self.log.name, "rb") as f:
            return sum(1 for line in f if b'" 2' in line or b'" 4' in line or b'" 5' in line)

    def stop(self) -> None:
        self.proc.terminate()
        os.unlink(self.log.name)


def new_repository(out: Path, env: dict, sources: list[Path]) -> tuple[Path, dict]:
    """A repository in `out` with each source ingested as an AIP; its environment."""
    repo = out / "repo"
    renv = dict(env, PRESERVE_REPO=str(repo))
    subprocess.run([PY, "-m", "preserve", "init"], env=renv, check=True,
                   stdout=subprocess.DEVNULL)
    for source in sources:
        subprocess.run([PY, "-m", "preserve", "ingest", str(source), "-c", "bench"],
                       env=renv, check=True, stdout=subprocess.DEVNULL)
    return repo, renv


def wan_location(repo: Path, name: str, bucket: str, relay) -> None:
    """An S3 location of `repo` on `bucket`, reached through the relay."""
    (repo / "locations" / f"{name}.yaml").write_text(yaml.safe_dump({
        "name": name, "kind": "s3", "bucket": bucket, "endpoint_url": relay.url,
        "region": "us-east-1", "addressing_style": "path", "concurrency": CONCURRENCY}))


def measure(server: Server, argv: list[str], env: dict, **kw) -> tuple[float, int, float]:
    """One timed run, on a quiet disk: what the run before wrote (an ingest of 1 GB, the
    store's own files) is flushed first, else its writeback lands in whichever run follows
    30 s later (the kernel's dirty_expire), and the tool measured next pays for it."""
    os.sync()
    before = server.requests()
    seconds, peak, _anon, _pss, _cpu = timed(argv, env, **kw)
    time.sleep(0.3)  # the server's log catches up
    return seconds, server.requests() - before, peak


def run(kind: str, rtt: float, files: int, server: Server, env: dict, aws: str | None,
        repeat: int = 1) -> None:
    """Each tool `repeat` times, in turn (a round of every tool, then the next), each run
    into a bucket of its own: this machine's speed drifts by half between minutes (every
    process's CPU time for the same work), so each tool's best run is compared, and the
    median shown beside it."""
    source = subset(kind, files)
    data = [p for p in source.rglob("*") if p.is_file() and p.name != ".complete"]
    nbytes = sum(p.stat().st_size for p in data)
    relay = LatencyRelay(server.port, rtt).start()
    out = WORK / f"wan-{kind}"
    shutil.rmtree(out, ignore_errors=True)
    runs: dict[str, list[tuple[float, int, float]]] = {}
    stamp = f"{kind}-{int(rtt)}-{int(time.time())}"
    try:
        for round_ in range(repeat):  # a repository of its own: nothing of the round before
            repo, renv = new_repository(out / str(round_), env, [source])
            for label, go in _runners(repo, renv, relay, server, env, aws, data, source,
                                      f"{stamp}-{round_}"):
                runs.setdefault(label, []).append(go())
            shutil.rmtree(out / str(round_), ignore_errors=True)
    finally:
        relay.stop()
        shutil.rmtree(out, ignore_errors=True)
    print(f"{kind}, round trip {rtt:g} ms: {len(data)} files, {nbytes / 1e6:.0f} MB"
          + (f", best of {repeat} runs in turn (median)" if repeat > 1 else ""))
    best = {label: min(r, key=lambda x: x[0]) for label, r in runs.items()}
    for label, (seconds, requests, peak) in best.items():
        median = sorted(r[0] for r in runs[label])[len(runs[label]) // 2]
        print(f"  {label:<28} {seconds:7.2f} s" + (f" ({median:6.2f})" if repeat > 1 else "")
              + f"  {len(data) / seconds:6.0f} files/s  {nbytes / seconds / 1e6:6.1f} MB/s  "
              f"{requests:6d} requests  peak RSS {peak / 2**20:5.0f} MiB")
        if repeat > 2:
            print("    runs: " + ", ".join(f"{r[0]:.2f}" for r in runs[label]))
    labels = list(best)
    peers = [best[label][0] for label in labels[1:] if "audit" not in label
             and "HeadObject" not in label and not label.startswith(" ")
             and "before" not in label]
    if peers:
        print(f"  fastest peer / preserve = {min(peers) / best[labels[0]][0]:.2f}x")


def _runners(repo: Path, renv: dict, relay, server: Server, env: dict, aws: str | None,
             data: list[Path], source: Path, stamp: str):
    """(label, run) for every tool of one round, each into a new bucket."""
    def bucket(tool: str) -> str:
        name = f"{tool}-{stamp}"
        server.s3.create_bucket(Bucket=name)
        return name

    def preserve() -> tuple[float, int, float]:
        location = f"wan{stamp.replace('-', '')}"
        wan_location(repo, location, bucket("pres"), relay)
        return measure(server, [PY, "-m", "preserve", "replicate", "--to", location], renv)

    twin = _twin(repo) if BEFORE is not None else None  # before either has run
    yield f"preserve replicate ({CONCURRENCY})", preserve
    if twin is not None:
        def before() -> tuple[float, int, float]:
            location = f"wanb{stamp.replace('-', '')}"
            wan_location(twin, location, bucket("presb"), relay)
            return measure(server, [PY, "-c", RUN_FROM, str(BEFORE), "replicate", "--to",
                                    location], dict(renv, PRESERVE_REPO=str(twin)))

        yield "preserve, before", before
    if AUDIT:
        location = f"wan{stamp.replace('-', '')}"
        audit = [PY, "-m", "preserve", "audit", "--location", location]
        yield f"preserve audit, quick ({CONCURRENCY})", lambda: measure(server, audit, renv)
        forget = ("import sqlite3,sys\nc=sqlite3.connect(sys.argv[1])\n"
                  "c.execute('DELETE FROM stored_etags')\nc.commit()\n")

        def forgotten() -> tuple[float, int, float]:
            subprocess.run([PY, "-c", forget, str(repo / "catalog.sqlite")], check=True)
            return measure(server, audit, renv)

        yield f"  ETags not known ({CONCURRENCY})", forgotten
        yield "  then known again", lambda: measure(server, audit, renv)
        heads = (f"import boto3\ns3=boto3.client('s3',endpoint_url='{relay.url}',"
                 "region_name='us-east-1')\nb='pres-" + stamp + "'\n"
                 "for page in s3.get_paginator('list_objects_v2').paginate(Bucket=b):\n"
                 "    for o in page.get('Contents', []):\n"
                 "        s3.head_object(Bucket=b, Key=o['Key'], ChecksumMode='ENABLED')\n")
        yield "list + one HeadObject each", lambda: measure(server, [PY, "-c", heads], env)
    if not SKIP_LOOP:
        def loop() -> tuple[float, int, float]:
            code = (f"import boto3\ns3=boto3.client('s3',endpoint_url='{relay.url}',"
                    "region_name='us-east-1')\nfor p in open(LISTING).read().split('\\n'):\n"
                    f"    p and s3.upload_file(p,'{bucket('loop')}',p)\n")
            with tempfile.NamedTemporaryFile("w", suffix=".txt") as listing:
                listing.write("\n".join(map(str, data)))
                listing.flush()
                return measure(server, [PY, "-c", code.replace("LISTING", repr(listing.name))],
                               env)

        yield "boto3 upload_file loop", loop
    if aws and PEERS:
        def sync(tool: str, n: int | None):
            def go() -> tuple[float, int, float]:
                with tempfile.NamedTemporaryFile("w", suffix=".cfg") as cfg:
                    cfg.write("[default]\nregion = us-east-1\n" + (
                        f"s3 =\n    max_concurrent_requests = {n}\n" if n else ""))
                    cfg.flush()
                    return measure(server, [
                        aws, "s3", "sync", str(source), f"s3://{bucket(tool)}/",
                        "--endpoint-url", relay.url, "--only-show-errors", "--exclude",
                        ".complete"], dict(env, AWS_CONFIG_FILE=cfg.name))
            return go

        yield "aws s3 sync (10)", sync("aws", None)
        yield f"aws s3 sync ({SAME})", sync("awsn", SAME)
    if shutil.which("rclone") and PEERS:
        renv2 = {k: v for k, v in env.items() if k != "AWS_CA_BUNDLE"}  # plain http here
        renv2.update(RCLONE_CONFIG_WAN_TYPE="s3", RCLONE_CONFIG_WAN_PROVIDER="Other",
                     RCLONE_CONFIG_WAN_ENDPOINT=relay.url,
                     RCLONE_CONFIG_WAN_ACCESS_KEY_ID="bench",
                     RCLONE_CONFIG_WAN_SECRET_ACCESS_KEY="bench",
                     RCLONE_CONFIG_WAN_REGION="us-east-1")

        def copy(tool: str, extra: list[str]):
            return lambda: measure(server, [
                "rclone", "copy", "--checksum", "--exclude", ".complete", str(source),
                f"wan:{bucket(tool)}", *extra], renv2)

        yield "rclone copy --checksum (4)", copy("rcl", [])
        yield f"rclone copy --checksum ({SAME})", copy(
            "rcln", ["--transfers", str(SAME), "--checkers", str(SAME)])


# `python -c RUN_FROM CHECKOUT args...`: preserve's command from another checkout
RUN_FROM = ("import sys; sys.path.insert(0, sys.argv.pop(1)); sys.argv[0] = 'preserve'; "
            "from preserve.__main__ import run; run()")


def _twin(repo: Path) -> Path:
    """A copy of `repo` for the other checkout, made before either runs: its stored files
    linked (read, never written in place), the rest copied (the catalog is written in
    place), so that neither run also copies its events to the other's location."""
    twin = repo.with_name(repo.name + "-before")
    shutil.rmtree(twin, ignore_errors=True)
    twin.mkdir()
    for item in repo.iterdir():
        if item.name == "aips":  # the local location (locations/local.yaml)
            subprocess.run(["cp", "-al", str(item), str(twin / item.name)], check=True)
        elif item.is_dir():
            shutil.copytree(item, twin / item.name, symlinks=True)
        else:
            shutil.copy2(item, twin / item.name)
    return twin


def run_many(rtt: float, count: int, server: Server, env: dict) -> None:
    """`count` AIPs of three 2 KB files each (the shape of most archives: an AIP per item),
    `preserve replicate` alone, then a quick audit of the copies and `preserve check`: what
    each AIP's own round trips cost across the link."""
    relay = LatencyRelay(server.port, rtt).start()
    out = WORK / "wan-many"
    shutil.rmtree(out, ignore_errors=True)
    try:
        items = []
        for n in range(count):
            items.append(out / f"item{n}")
            items[-1].mkdir(parents=True)
            for i in range(3):
                (items[-1] / f"page{i}.txt").write_bytes(os.urandom(2000))
        repo, renv = new_repository(out, env, items)
        bucket = f"many-{int(rtt)}-{int(time.time())}"
        server.s3.create_bucket(Bucket=bucket)
        wan_location(repo, "wan", bucket, relay)
        seconds, requests, peak = measure(
            server, [PY, "-m", "preserve", "replicate", "--to", "wan"], renv)
        audited = measure(server, [PY, "-m", "preserve", "audit", "--location", "wan"], renv)
        checked = measure(server, [PY, "-m", "preserve", "check"], renv)
    finally:
        relay.stop()
        shutil.rmtree(out, ignore_errors=True)
    print(f"{count} AIPs of 3 files, round trip {rtt:g} ms: {seconds:.2f} s, "
          f"{seconds / count * 1000:.0f} ms per AIP, {requests} requests, "
          f"peak RSS {peak / 2**20:.0f} MiB")
    print(f"  then a quick audit of them: {audited[0]:.2f} s, "
          f"{audited[0] / count * 1000:.0f} ms per AIP, {audited[1]} requests, "
          f"peak RSS {audited[2] / 2**20:.0f} MiB")
    print(f"  then `preserve check` (every location against the catalog): {checked[0]:.2f} s, "
          f"{checked[1]} requests, peak RSS {checked[2] / 2**20:.0f} MiB")


def replicated(out: Path, env: dict, source: Path, server: Server, relay, name: str,
               rtt: float) -> tuple[Path, dict, str]:
    """A repository in `out` with `source` ingested and copied to a new bucket through
    the relay (location "wan"): (its root, its environment, the bucket)."""
    repo, renv = new_repository(out, env, [source])
    bucket = f"{name}-{int(rtt)}-{int(time.time())}"
    server.s3.create_bucket(Bucket=bucket)
    wan_location(repo, "wan", bucket, relay)
    subprocess.run([PY, "-m", "preserve", "replicate", "--to", "wan"], env=renv,
                   check=True, stdout=subprocess.DEVNULL)
    return repo, renv, bucket


SIGN = """
import sys, uuid
from preserve.repository import Repository
from preserve.storage.history import publish, sign_pending
repo = Repository(sys.argv[1])
for n in range(int(sys.argv[2])):
    with repo.catalog.transaction() as db:
        db.execute("INSERT INTO log_pending VALUES (?, NULL, ?, ?)",
                   (str(uuid.uuid4()), '{"kind": "bench"}', n))
    sign_pending(repo)
publish(repo)
"""


def run_log(rtt: float, checkpoints: int, server: Server, env: dict) -> None:
    """A repository whose event log has `checkpoints` checkpoints (a command each: years
    of cron jobs), all of them at an object store; then one more command's events copied
    there (`preserve audit --location wan`: a quick audit of one small AIP, its events
    signed and copied at its end), and `preserve log checkpoint` (nothing new to copy)."""
    relay = LatencyRelay(server.port, 0).start()
    out = WORK / "wan-log"
    shutil.rmtree(out, ignore_errors=True)
    try:
        source = out / "item"
        source.mkdir(parents=True)
        (source / "page.txt").write_bytes(os.urandom(2000))
        repo, renv, _bucket = replicated(out, env, source, server, relay, "log", rtt)
        subprocess.run([PY, "-c", SIGN, str(repo), str(checkpoints)], env=renv, check=True)
        relay.delay = rtt / 2000.0
        audit = measure(server, [PY, "-m", "preserve", "audit", "--location", "wan"], renv)
        printed = measure(server, [PY, "-m", "preserve", "log", "checkpoint"], renv)
    finally:
        relay.stop()
        shutil.rmtree(out, ignore_errors=True)
    print(f"event log of {checkpoints} checkpoints, round trip {rtt:g} ms: a quick audit "
          f"and its events copied {audit[0]:.2f} s ({audit[1]} requests); the newest "
          f"checkpoint printed {printed[0]:.2f} s ({printed[1]} requests)")


def run_repair(rtt: float, count: int, server: Server, env: dict, store: bool = False
               ) -> None:
    """A disk restored from its object-store copy: `count` small files ingested, copied
    to the store, deleted from the disk, then `preserve repair` (its full audit of both
    copies first, then each file fetched, written, read back). With `store`, the other
    way: the files lost from the store, written back from the disk."""
    relay = LatencyRelay(server.port, rtt).start()
    out = WORK / "wan-repair"
    shutil.rmtree(out, ignore_errors=True)
    try:
        source = out / "item"
        source.mkdir(parents=True)
        for n in range(count):
            (source / f"page{n:05}.txt").write_bytes(os.urandom(2000 + n % 5000))
        repo, renv, bucket = replicated(out, env, source, server, relay, "repair", rtt)
        if store:
            lost = [o["Key"] for page in server.s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket) for o in page.get("Contents", []) if "/page" in o["Key"]]
            for i in range(0, len(lost), 1000):
                server.s3.delete_objects(Bucket=bucket, Delete={
                    "Objects": [{"Key": key} for key in lost[i:i + 1000]]})
        else:
            lost = [p for p in (repo / "aips").rglob("page*.txt")]
            for path in lost:
                path.unlink()
        audit_only = measure(server, [PY, "-m", "preserve", "audit", "--full", "--location",
                                      "wan"], renv, ok=(0, 1))
        seconds, requests, peak = measure(server, [PY, "-m", "preserve", "repair"], renv)
    finally:
        relay.stop()
        shutil.rmtree(out, ignore_errors=True)
    print(f"repair of {len(lost)} files lost from the "
          + ("store, from the disk" if store else "disk, from the store") + ", round trip "
          f"{rtt:g} ms: {seconds:.2f} s ({requests} requests, peak RSS "
          f"{peak / 2**20:.0f} MiB); a full audit of the store's copy alone "
          f"{audit_only[0]:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rtt", default="0,10,40")
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--only", choices=("small", "large"))
    parser.add_argument("--aws", default="/tmp/awscli-venv/bin/aws")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--preserve-only", action="store_true")
    parser.add_argument("--skip-loop", action="store_true", help="(slow across a WAN)")
    parser.add_argument("--many", type=int, metavar="N",
                        help="instead: N small AIPs, preserve replicate alone")
    parser.add_argument("--log", type=int, metavar="N",
                        help="instead: an event log of N checkpoints at the store, then a "
                             "command's events copied there")
    parser.add_argument("--audit", action="store_true",
                        help="also: preserve's quick audit of the copy, and a HeadObject loop")
    parser.add_argument("--repair", type=int, metavar="N",
                        help="instead: N files lost from the disk, restored from the store")
    parser.add_argument("--repair-store", type=int, metavar="N",
                        help="instead: N files lost from the store, restored from the disk")
    parser.add_argument("--before", metavar="CHECKOUT",
                        help="also: preserve from another checkout (an earlier commit), on a "
                             "copy of the same repository, in the same rounds")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each tool, in turn; the best and the median shown")
    args = parser.parse_args()
    global CONCURRENCY, PEERS, SKIP_LOOP, AUDIT, BEFORE
    AUDIT = args.audit
    BEFORE = Path(args.before).resolve() if args.before else None
    CONCURRENCY, PEERS = args.concurrency, not args.preserve_only
    SKIP_LOOP = args.skip_loop or args.preserve_only
    env = dict(os.environ, **ENV, PRESERVE_NO_PROGRESS="1")
    aws = args.aws if Path(args.aws).exists() else shutil.which("aws")
    server = Server(env)
    try:
        if args.repair or args.repair_store:
            for rtt in (float(x) for x in args.rtt.split(",")):
                run_repair(rtt, args.repair or args.repair_store, server, env,
                           store=bool(args.repair_store))
            return
        if args.log:
            for rtt in (float(x) for x in args.rtt.split(",")):
                run_log(rtt, args.log, server, env)
            return
        if args.many:
            for rtt in (float(x) for x in args.rtt.split(",")):
                run_many(rtt, args.many, server, env)
            return
        for kind in [args.only] if args.only else ["small", "large"]:
            for rtt in (float(x) for x in args.rtt.split(",")):
                run(kind, rtt, args.files, server, env, aws, args.repeat)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
