"""JSON responses serialised once with the standard library (FastAPI's encoder is slow on big pages)."""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import Response


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(payload, status_code=status, headers=headers, media_type="application/json")
