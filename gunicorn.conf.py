"""gunicorn settings the image uses (`--config gunicorn.conf.py`).

gunicorn writes `Server: gunicorn` on every response and has no setting to
leave it out; naming the software only helps whoever looks for a known flaw.
The command line (Dockerfile, docker-compose.yml) still sets bind and workers.
"""

from __future__ import annotations

from gunicorn.http import wsgi

_default_headers = wsgi.Response.default_headers


def _without_server(self: wsgi.Response) -> list[str]:
    return [
        line
        for line in _default_headers(self)
        if not line.lower().startswith("server:")
    ]


wsgi.Response.default_headers = _without_server


def post_worker_init(worker: object) -> None:
    """Load karrio in the background as each web worker starts, so the first
    *Sync now* does not wait for it (shipments.carriers.sync)."""
    from shipments.carriers.sync import karrio_warm_up_soon

    karrio_warm_up_soon()
