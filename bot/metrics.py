"""Prometheus metrics of the channels, in a registry of their own (one per running server)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.messages_in = Counter("salesbot_messages_in_total",
                                   "Messages, files and button presses received",
                                   ["channel"], registry=self.registry)
        self.messages_out = Counter("salesbot_messages_out_total", "Messages sent or cards edited",
                                    ["channel"], registry=self.registry)
        self.duplicates = Counter("salesbot_duplicates_total", "Repeated deliveries dropped",
                                  ["channel"], registry=self.registry)
        self.send_failures = Counter("salesbot_send_failures_total", "Send attempts that failed",
                                     ["channel", "reason"], registry=self.registry)
        self.send_dropped = Counter("salesbot_send_given_up_total",
                                    "Sends given up (permanent error or retry window over)",
                                    ["channel"], registry=self.registry)
        self.reply_latency = Histogram(
            "salesbot_reply_latency_seconds", "From receiving a message to its last reply sent", ["channel"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
