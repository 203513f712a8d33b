"""Prometheus counters for `/metrics`: what only Lapse knows — downloads counted, uploads stored, links
made, requests refused for a backend that was away. Request rates and latencies are the proxy's to measure.

Several workers (`lapse serve --workers N`) share one count through prometheus-client's multiprocess mode:
`lapse serve` points PROMETHEUS_MULTIPROC_DIR at a fresh folder before the workers start, each worker's counters
live in files there, and whichever worker answers a scrape adds them all up. One process keeps them in memory.
prometheus-client picks its mode when it is first imported, from the same variable, so this module reads it once
too.
"""

import os

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, generate_latest, multiprocess

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
_MULTIPROCESS = MULTIPROCESS_DIR in os.environ

DOWNLOADS = Counter("lapse_downloads", "Downloads counted, each committed before its bytes were sent.")
UPLOADS = Counter("lapse_uploads", "Files stored.")
UPLOAD_BYTES = Counter("lapse_upload_bytes", "Bytes of the files stored.")
LINKS = Counter("lapse_links", "Links made.")
SWEPT_FILES = Counter("lapse_swept_files", "Files the sweeper deleted: no live link needed them any more.")
SWEPT_BLOBS = Counter(
    "lapse_swept_blobs", "Orphan blobs and unfinished uploads the sweeper's safety-net listing deleted."
)
SWEPT_INTENTS = Counter(
    "lapse_swept_intents", "Uploads the sweeper aborted: their process died, and their heartbeat went stale."
)
SWEPT_TOMBSTONES = Counter(
    "lapse_swept_tombstones", "Blobs the sweeper deleted from the delete outbox (rows deleted, bytes not yet)."
)
UNAVAILABLE = Counter("lapse_unavailable", "Requests answered 503: the database, storage or Redis was away.")


def exposition() -> tuple[bytes, str]:
    """The text a scrape gets, and its content type."""
    registry = REGISTRY
    if _MULTIPROCESS:  # every worker's files, read afresh for each scrape
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST
