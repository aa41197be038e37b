"""The S3 key prefix is a folder, however the operator wrote it."""

from __future__ import annotations

import pytest

from voicebot.recordings.storage import S3Store


@pytest.mark.parametrize(
    ("prefix", "name"),
    [
        ("", "calls/1.wav"),
        ("tenant-a", "tenant-a/calls/1.wav"),
        ("tenant-a/", "tenant-a/calls/1.wav"),
        ("/tenant-a/", "tenant-a/calls/1.wav"),
        ("/", "calls/1.wav"),
        ("org/tenant-a", "org/tenant-a/calls/1.wav"),
    ],
)
def test_prefix_is_a_folder(prefix: str, name: str) -> None:
    """RECORDING_S3_PREFIX without a trailing slash was glued to the file name
    ("tenant-acalls/1.wav")."""
    assert S3Store(client=None, bucket="b", prefix=prefix)._name("calls/1.wav") == name
