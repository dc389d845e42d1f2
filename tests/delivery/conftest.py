"""Fixtures for delivery tests: a fake Slack and fake SMTP servers on 127.0.0.1, one per test."""

from __future__ import annotations

import pytest

from fakes.slack import FakeSlack
from fakes.smtp import FakeSMTP


@pytest.fixture
def fake_slack():
    """A started :class:`FakeSlack` (webhooks + Web API); stopped after the test."""
    with FakeSlack() as slack:
        yield slack


@pytest.fixture
def fake_smtp():
    """A started :class:`FakeSMTP` offering STARTTLS and AUTH (``alerts`` / ``s3cret-password``)."""
    with FakeSMTP(tls="starttls") as smtp:
        yield smtp


@pytest.fixture
def fake_smtps():
    """A started :class:`FakeSMTP` speaking implicit TLS (SMTPS), with the same AUTH."""
    with FakeSMTP(tls="implicit") as smtp:
        yield smtp
