"""Fixtures shared by every suite: real services on loopback and the shared samples."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.services import SAMPLES, Service, moto_server, tansu_broker


@pytest.fixture(scope="session")
def samples() -> Path:
    """The shared real exchange recordings (../shared/samples)."""
    if not SAMPLES.is_dir():
        pytest.fail(f"shared samples missing at {SAMPLES}")
    return SAMPLES


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[Service]:
    """A real Kafka-protocol broker (tansu) for the whole session."""
    with tansu_broker() as svc:
        yield svc


@pytest.fixture(scope="session")
def moto() -> Iterator[Service]:
    """moto in server mode for the whole session (S3, Kinesis)."""
    with moto_server() as svc:
        yield svc


@pytest.fixture(autouse=True)
def _fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # Never let a test pick up real credentials.
    for key, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ):
        monkeypatch.setenv(key, value)
