"""Every Prometheus metric mammocad records, in one place (names are a contract with
deploy/grafana/mammocad.json and deploy/prometheus/alerts.yml; tests/metrics checks both).

Import this module only after :func:`mammocad.metrics.multiprocess.prepare` in a Celery
worker: prometheus_client picks its value store (memory or multiprocess files) when it is
first imported. Gauges here are sums over processes (``multiprocess_mode="livesum"``).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

#: Seconds from the last image of a study received to results accepted by a destination:
#: a screening study takes tens of seconds on a GPU, minutes on CPU, hours in an outage.
LATENCY_BUCKETS = (5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200, 1800, 3600, 7200, 21600)
STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)

# -- node ------------------------------------------------------------------------------
ASSOCIATIONS = Counter(
    "mammocad_associations", "Incoming associations by outcome (accepted, rejected) and reject reason",
    ["outcome", "reason"])
INSTANCES = Counter(
    "mammocad_instances_stored", "C-STORE requests answered by the node, by status and what became of the "
    "object (analysed, set_aside, duplicate, refused, failed)", ["status", "kind"])
INSTANCE_BYTES = Counter(
    "mammocad_instance_bytes", "Bytes of objects written to the spool, by kind (analysed, set_aside)", ["kind"])
STUDIES_DECLARED = Counter(
    "mammocad_studies_declared", "Studies declared complete by the node, by reason (four_views, timeout)",
    ["reason"])

# -- workers ---------------------------------------------------------------------------
RESULT_LATENCY = Histogram(
    "mammocad_result_latency_seconds", "Seconds from the last image of a study received by the node to the "
    "study's results accepted by a destination", ["destination"], buckets=LATENCY_BUCKETS)
STAGE_SECONDS = Histogram(
    "mammocad_stage_seconds", "Seconds per pipeline stage: wait (image received to analysis start), analyse "
    "(one image), build (a study's result objects), send (one delivery attempt)", ["stage"],
    buckets=STAGE_BUCKETS)
MODEL_SECONDS = Histogram(
    "mammocad_model_seconds_per_image", "Seconds the detector spent on one image", ["device"],
    buckets=STAGE_BUCKETS)
IMAGES_ANALYSED = Counter(
    "mammocad_images_analysed", "Images analysed, by outcome (ok, error)", ["outcome"])
DETECTOR_ERRORS = Counter(
    "mammocad_detector_errors", "Images the detector could not analyse (unreadable pixels, time limit, "
    "repeated worker crashes)", ["reason"])
#: One per attempt (the name is a dashboard contract): ``outcome`` is what the attempt left
#: the item in, so ``delivered`` is also the count of delivered items and the sum over
#: outcomes the count of attempts. Only an item of a destination no longer configured is
#: counted ``dead`` (or ``superseded``) without an attempt (mammocad/worker/outbox_delivery.py).
DELIVERIES = Counter(
    "mammocad_delivery_attempts", "Delivery attempts by destination and what each left the item in: delivered "
    "(nothing pending; one per delivered item), retry (objects pending, tried again later), dead (objects "
    "pending at the deadline: dead-lettered; also an item of a removed destination, without an attempt), "
    "superseded (objects pending at the deadline that confirmed studies resend copies carried: completed, "
    "not dead-lettered; also an item of a removed destination, without an attempt)",
    ["destination", "outcome"])

# -- both ------------------------------------------------------------------------------
FAULTS = Counter(
    "mammocad_faults", "Fault events, each also logged as event=<name> (docs/FAULTS.md): reports built as "
    "CAD failed, outputs that failed, work re-queued by the reconciler, expired analysis leases, refused bombs",
    ["event"])
AUDIT_MESSAGES = Counter(
    "mammocad_audit_messages", "Audit messages by sink (file, syslog; queue: dropped before either, the "
    "queue was full) and outcome (written, dropped)",
    ["sink", "outcome"])
