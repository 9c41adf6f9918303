#!/usr/bin/env python3
"""Container health check: GET ticktape's /healthz on this host and exit 0 when it answers 2xx.

Standard library only and no ticktape import, so that a check every few seconds costs milliseconds.
The port is the one ticktape serves on (``TICKTAPE_SERVER_PORT``, default 8321); an explicit URL may
be given as the only argument.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    """Probes the URL and reports the outcome on stdout (``docker inspect`` shows it)."""
    port = os.environ.get("TICKTAPE_SERVER_PORT", "8321")
    url = argv[1] if len(argv) > 1 else f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {url}: {exc}")
        return 1
    if 200 <= status < 300:
        print(f"healthy: {url}: HTTP {status}")
        return 0
    print(f"unhealthy: {url}: HTTP {status}")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
