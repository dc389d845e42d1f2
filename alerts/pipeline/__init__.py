"""The stages between an alert and its deliveries: routing, grouping keys, rate limits."""
