"""An S3-compatible server on loopback for the S3 half of the storage tests.

moto in server mode (``moto[server]``, ``python -m moto.server``) speaks the S3 REST API over
HTTP, as AWS S3, MinIO or Ceph RGW would: none of those can run here (no network, and neither
MinIO nor Ceph installs from the package registries this machine reaches), so moto is their
stand-in. assay talks to it through boto3 exactly as to the real thing; only the endpoint URL
differs. One server per test session; each server under test gets its own bucket.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

#: Any values do for moto; real deployments take them from the usual AWS variables.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class S3Server:
    """A running moto server: its endpoint, and the environment an assay process needs."""

    endpoint: str
    proc: subprocess.Popen[bytes]

    def client(self):  # boto3 has no stubs here
        import boto3

        return boto3.session.Session(
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
        ).client("s3", endpoint_url=self.endpoint)

    def new_bucket(self) -> str:
        name = "assay-test-" + secrets.token_hex(6)
        self.client().create_bucket(Bucket=name)
        return name

    def env(self, bucket: str, prefix: str = "blobs") -> dict[str, str]:
        """What ``assay serve`` or ``assay admin`` needs to use ``bucket``: the setting, and the
        endpoint and credentials as the AWS variables give them."""
        return {
            **CREDENTIALS,
            "ASSAY_BLOB_STORE": f"s3://{bucket}/{prefix}",
            "ASSAY_S3_ENDPOINT_URL": self.endpoint,
        }

    def objects(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key in ``bucket`` under ``prefix`` (listing, as S3 users see it)."""
        keys: list[str] = []
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
        return sorted(keys)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def s3_server() -> Iterator[S3Server]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    server = S3Server(endpoint, proc)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto server exited with {proc.returncode}")
            try:
                httpx.get(endpoint + "/", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto server never answered") from None
                time.sleep(0.1)
        yield server
    finally:
        server.stop()
