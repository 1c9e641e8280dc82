"""A real S3-compatible server on loopback (moto's server mode) for the tests."""

from __future__ import annotations

import os

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}


class S3Server:
    def __init__(self, port: int = 0):
        from moto.server import ThreadedMotoServer

        for k, v in CREDENTIALS.items():
            os.environ.setdefault(k, v)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.server.start()
        host, self.port = self.server.get_host_and_port()
        self.url = f"http://{host}:{self.port}"

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1")

    def stop(self) -> None:
        self.server.stop()
