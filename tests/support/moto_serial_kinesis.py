"""moto in server mode, with Kinesis requests served one at a time (the tests' ``moto`` fixture).

moto's ``Shard.put_record`` reads the shard's highest sequence number and then inserts the record
under that number + 1 (its own source says it "is not safe for concurrency"). moto's server answers
requests on several threads, so two ``PutRecords`` calls on one shard at the same moment can take the
same sequence number: the second record silently replaces the first, and both callers are told their
records were written. Our publisher keeps several calls in flight, as the Kinesis documentation allows,
and a loaded test machine then lost a whole aggregated record (202 rows) in the lake while the
publisher, correctly, counted none lost. Real Kinesis assigns sequence numbers atomically per shard;
serialising moto's Kinesis requests gives the tests that behaviour. S3 and every other service keep
moto's threads.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

KINESIS_TARGET_PREFIX = "Kinesis_"


class SerialKinesis:
    """WSGI middleware: a Kinesis request (``X-Amz-Target: Kinesis_...``) runs under one lock."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith(KINESIS_TARGET_PREFIX):
            return self.app(environ, start_response)
        with self.lock:
            return list(self.app(environ, start_response))  # the whole response inside the lock


def main(argv: list[str] | None = None) -> None:
    """``python moto_serial_kinesis.py -H HOST -p PORT``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        SerialKinesis(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
