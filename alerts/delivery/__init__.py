"""Delivery: the durable outbox and the relay that empties it into Slack and email."""
