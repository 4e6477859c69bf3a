"""Shared fixtures: image makers and real stores in temporary folders."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Test servers start no warm TensorFlow worker each (~0.4 GB); the warm-worker tests turn it on.
os.environ.setdefault("MOBILETRAIN_WARM_WORKER", "0")


def encode_image(array: np.ndarray, fmt: str = "PNG", quality: int = 90) -> bytes:
    """Encode a uint8 HxW or HxWxC array."""
    buf = io.BytesIO()
    img = Image.fromarray(array)
    if fmt == "JPEG":
        img.save(buf, format=fmt, quality=quality)
    else:
        img.save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture
def make_image() -> Callable[..., bytes]:
    """Factory of small distinct images: make_image(seed, fmt='PNG', size=16)."""

    def make(seed: int = 0, fmt: str = "PNG", size: int = 16, mode: str = "RGB") -> bytes:
        rng = np.random.default_rng(seed)
        shape = (size, size, 3) if mode == "RGB" else (size, size)
        return encode_image(rng.integers(0, 256, shape, dtype=np.uint8), fmt)

    return make


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3-compatible server (moto's standalone server) on loopback for the whole session.

    Yields its endpoint URL; sets dummy AWS credentials in the environment so that boto3 in
    this process and in server/worker subprocesses signs requests without a real account.
    """
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        pytest.skip("S3 tests need moto (pip install -r requirements.lock)")
    saved = {k: os.environ.get(k) for k in _S3_ENV}
    os.environ.update(_S3_ENV)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def s3_bucket_url(s3_endpoint: str) -> str:
    """A fresh bucket on the loopback S3 server, as an ``s3://`` blob store URL."""
    import uuid

    import boto3

    bucket = f"mt-{uuid.uuid4().hex[:16]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    client.close()
    return f"s3://{bucket}/mobiletrain?endpoint_url={s3_endpoint}&region=us-east-1"
