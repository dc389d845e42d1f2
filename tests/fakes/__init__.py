"""Test doubles that speak the real protocols on 127.0.0.1: a fake Slack (HTTP) and a fake SMTP server.

They are driven by the real client libraries (``slack_sdk``, ``aiosmtplib``) in the tests; see
``tests/delivery/test_fakes.py`` for what each one proves about the service it stands in for.
"""

from .slack import FakeSlack, SlackRequest
from .smtp import FakeSMTP, ReceivedMail

__all__ = ["FakeSlack", "SlackRequest", "FakeSMTP", "ReceivedMail"]
