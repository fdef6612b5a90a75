"""Recognition's Prometheus figures (served at /metrics by shared.metrics): how long a photo takes to read, how full
the OCR queue is, and how many requests it turned away."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY = Histogram(
    "alpr_recognition_seconds",
    "Time to read one photo (OCR in a worker thread, queue wait excluded)",
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0),
)
IN_FLIGHT = Gauge("alpr_recognition_queue_depth", "Photos being read or waiting for a worker")
CAPACITY = Gauge("alpr_recognition_queue_capacity", "Photos admitted at most (workers + queue); beyond: 503")
REFUSED = Counter("alpr_recognition_refused_total", "Photos refused with 503 because the queue was full")
