"""free5GC-shaped callback bodies, from the vectors in tests/vectors."""

from __future__ import annotations

from pathlib import Path

import orjson

VECTORS = Path(__file__).parent.parent / "vectors"
JSON = {"content-type": "application/json"}
_AMF = orjson.loads((VECTORS / "d1-amf-notification-location.json").read_bytes())


def amf_body(ue: int, seq: int) -> bytes:
    """free5GC's D1 location report for UE ``ue``; its cell id and time both encode ``seq``."""
    doc = orjson.loads(orjson.dumps(_AMF))
    report = doc["reportList"][0]
    report["supi"] = f"imsi-20893{ue:010d}"
    nr = report["location"]["nrLocation"]
    nr["ncgi"]["nrCellId"] = f"{seq:09x}"
    nr["ueLocationTimestamp"] = f"2026-07-01T08:{seq // 60 % 60:02d}:{seq % 60:02d}.{seq:06d}Z"
    return orjson.dumps(doc)
