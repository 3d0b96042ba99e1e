"""What every hostile-input answer must look like."""

from __future__ import annotations

import orjson

PROBLEM = "application/problem+json"


def check_answer(
    status: int, headers: dict[str, str], body: bytes, allowed: set[int], *, head: bool = False
) -> None:
    """``status`` is allowed; an error is a well-formed ProblemDetails without internals."""
    assert status in allowed, (status, body[:300])
    if status < 400:
        return
    assert headers.get("content-type") == PROBLEM, headers
    if head:
        return
    doc = orjson.loads(body)
    assert doc["status"] == status
    assert isinstance(doc["title"], str)
    assert doc["title"]
    assert isinstance(doc.get("detail", ""), str)
    for param in doc.get("invalidParams", []):
        assert isinstance(param["param"], str)
    assert b"Traceback" not in body
    assert b'File "' not in body
