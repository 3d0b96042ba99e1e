"""One real ``subscriber serve`` process per hostile-input module, on the session's stack."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from subscriber.settings import Settings
from tests.support.processes import KNOWN_ONLY, Server, serve_process
from tests.support.settings import isolate


@pytest.fixture(scope="module")
def server(
    stack_base_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The receiver under granian, publishing to the session's Kafka, for this module."""
    tmp = tmp_path_factory.mktemp("hostile")
    settings = isolate(stack_base_settings, uuid.uuid4().hex[:10], tmp)
    with serve_process(settings, tmp / "serve.log", registry=KNOWN_ONLY) as running:
        yield running
