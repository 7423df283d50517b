"""A fake Grafana serving the snapshot API as Grafana's HTTP API docs ("Snapshot API") describe.

``POST /api/snapshots`` with ``{"dashboard": {...}, "name", "expires"}`` answers
``{"deleteKey", "deleteUrl", "key", "url", "id"}``, the URLs built on the server's root URL as
Grafana builds them (``<root>/dashboard/snapshot/<key>``, ``<root>/api/snapshots-delete/<deleteKey>``).
``GET /api/snapshots/<key>`` gives the stored model back under ``dashboard`` with
``meta.isSnapshot``. Failures are ``{"message": ...}`` bodies; their wording here is ours where
the docs give none:

- a missing or wrong bearer token: 401 ``Unauthorized``;
- a body that is not JSON (NaN and Infinity included, as Go's decoder), not sent as JSON, or has no ``dashboard`` object: 400 ``bad request data``;
- ``refuse=(status, message)``: every post is answered with that status and message.

Use it as a context manager; ``snapshots`` holds every posted body, ``requests`` every request.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from tests.fakes.http_server import FakeBackend, Reply, Request

SNAPSHOTS = "/api/snapshots"


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Go's decoder refuses NaN and Infinity too


def _message(status: int, text: str) -> Reply:
    return Reply(status, json.dumps({"message": text}))


class FakeGrafana(FakeBackend):
    """Grafana's snapshot API on 127.0.0.1.

    Args:
        token: the service-account token a request must carry as ``Authorization: Bearer``;
            None accepts any request.
        refuse: answer every snapshot post with this ``(status, message)``.
    """

    def __init__(self, token: str | None = None, refuse: tuple[int, str] | None = None) -> None:
        self.token = token
        self.refuse = refuse
        self.snapshots: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        super().__init__()

    def handle(self, request: Request) -> Reply:
        """Answer one request as Grafana would."""
        if (
            self.token is not None
            and request.headers.get("authorization") != f"Bearer {self.token}"
        ):
            return _message(401, "Unauthorized")
        if request.method == "POST" and request.path == SNAPSHOTS:
            return self._create(request)
        if request.method == "GET" and request.path.startswith(f"{SNAPSHOTS}/"):
            key = request.path.removeprefix(f"{SNAPSHOTS}/")
            if key not in self.snapshots:
                return _message(404, "Dashboard snapshot not found")
            body = self.snapshots[key]
            meta = {"isSnapshot": True, "type": "snapshot", "expires": body.get("expires", 0)}
            return Reply(200, json.dumps({"dashboard": body["dashboard"], "meta": meta}))
        return _message(404, "Not found")

    def _create(self, request: Request) -> Reply:
        if self.refuse is not None:
            return _message(*self.refuse)
        if "application/json" not in request.headers.get("content-type", ""):
            return _message(400, "bad request data")
        try:
            body = json.loads(request.body, parse_constant=_no_constants)
        except ValueError:
            return _message(400, "bad request data")
        if not isinstance(body, dict) or not isinstance(body.get("dashboard"), dict):
            return _message(400, "bad request data")
        number = next(self._ids)
        key, delete_key = f"snap{number:04d}key", f"snap{number:04d}delete"
        self.snapshots[key] = body
        return Reply(
            200,
            json.dumps(
                {
                    "deleteKey": delete_key,
                    "deleteUrl": f"{self.url}/api/snapshots-delete/{delete_key}",
                    "key": key,
                    "url": f"{self.url}/dashboard/snapshot/{key}",
                    "id": number,
                }
            ),
        )
