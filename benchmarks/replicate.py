"""Replication benchmark: preserve's verified upload against a plain boto3 loop.

Starts a real S3-compatible server on loopback (moto's server mode, in its
own process), then, on the same data in the same run:
  small  an AIP of 5,000 files of 1-64 KiB
  large  an AIP of 8 files of 128 MiB
  preserve  `preserve replicate --to bench` (SHA-256 checksummed uploads, each
            verified against the digests recorded at ingest, inventories last)
  loop      for each file: s3.upload_file(path, bucket, key) (boto3 defaults)
Peak memory is the summed RSS of preserve's process tree (the server excluded).

    .venv/bin/python benchmarks/replicate.py [--only small|large]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import WORK, timed  # noqa: E402  (same folder: shared timing helpers)

PY = sys.executable
ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
       "AWS_DEFAULT_REGION": "us-east-1"}


def make_source(kind: str) -> Path:
    target = WORK / f"replicate-{kind}"
    if (target / ".complete").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    rng = random.Random(7 if kind == "small" else 8)
    if kind == "small":
        for i in range(5000):
            d = target / f"d{i % 20:02d}"
            d.mkdir(exist_ok=True)
            (d / f"f{i:05d}.bin").write_bytes(rng.randbytes(rng.randint(1024, 65536)))
    else:
        for i in range(8):
            with open(target / f"big{i}.bin", "wb") as f:
                for _ in range(128):
                    f.write(rng.randbytes(1 << 20))
    (target / ".complete").write_text("ok")
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=("small", "large"))
    args = parser.parse_args()
    env = dict(os.environ, **ENV, PRESERVE_NO_PROGRESS="1")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([PY, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id="bench", aws_secret_access_key="bench")
        for _ in range(100):
            try:
                s3.list_buckets()
                break
            except Exception:
                time.sleep(0.1)
        for kind in [args.only] if args.only else ["small", "large"]:
            run(kind, url, s3, env)
    finally:
        server.terminate()


def run(kind: str, url: str, s3, env: dict) -> None:
    source = make_source(kind)
    (source / ".complete").rename(WORK / f".rc-{kind}")
    out = WORK / f"rep-{kind}"
    shutil.rmtree(out, ignore_errors=True)
    try:
        repo = out / "repo"
        env = dict(env, PRESERVE_REPO=str(repo))
        subprocess.run([PY, "-m", "preserve", "init"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([PY, "-m", "preserve", "ingest", str(source), "-c", "bench"], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        for bucket in (f"pres-{kind}", f"loop-{kind}"):
            s3.create_bucket(Bucket=bucket)
        (repo / "locations" / "bench.yaml").write_text(yaml.safe_dump({
            "name": "bench", "kind": "s3", "bucket": f"pres-{kind}", "endpoint_url": url,
            "region": "us-east-1", "addressing_style": "path"}))
        files = [p for p in source.rglob("*") if p.is_file()]
        nbytes = sum(p.stat().st_size for p in files)
        secs, peak, anon, _pss = timed([PY, "-m", "preserve", "replicate", "--to", "bench"], env)
        loop = (f"import boto3,sys\ns3=boto3.client('s3',endpoint_url='{url}',"
                "region_name='us-east-1')\nfor p in sys.stdin.read().split('\\n'):\n"
                f"    p and s3.upload_file(p,'loop-{kind}',p)\n")
        start = time.perf_counter()
        subprocess.run([PY, "-c", loop], input="\n".join(map(str, files)), text=True,
                       env=env, check=True)
        loop_secs = time.perf_counter() - start
        print(f"{kind}: {len(files)} files, {nbytes / 1e6:.0f} MB")
        print(f"  preserve replicate {secs:6.2f} s  {nbytes / secs / 1e6:6.0f} MB/s  "
              f"{len(files) / secs:6.0f} files/s  peak RSS {peak / 2**20:.0f} MiB "
              f"(private {anon / 2**20:.0f})")
        print(f"  upload_file loop   {loop_secs:6.2f} s  {nbytes / loop_secs / 1e6:6.0f} MB/s  "
              f"{len(files) / loop_secs:6.0f} files/s")
        print(f"  loop / preserve = {loop_secs / secs:.2f}x (preserve also verifies every "
              "object and writes the bag's tag files)")
    finally:
        (WORK / f".rc-{kind}").rename(source / ".complete")
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
