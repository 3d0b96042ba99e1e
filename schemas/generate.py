"""Regenerate the JSON Schema of the Kafka event contract from ``subscriber/events.py``.

Run from the repository root after changing ``LocationEvent``:

    .venv/bin/python schemas/generate.py

``tests/test_events.py`` fails until the checked-in file matches the model.
"""

from __future__ import annotations

from pathlib import Path

from subscriber.events import SCHEMA_FILE, render_json_schema


def main() -> None:
    """Write ``schemas/location-event.v<N>.json`` next to this script."""
    target = Path(__file__).resolve().parent / SCHEMA_FILE
    target.write_text(render_json_schema(), encoding="utf-8")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
