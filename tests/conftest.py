"""Shared fixtures: the real PostgreSQL (pytest-django's test database), the real
Redis (a database of its own, flushed per test), the session's Apache Kafka node
(shared through topic namespaces: tests/kafka.py) and the Auth Service stand-in
run as a separate process on a free port, so authentication is exercised over HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from devstack import standins
from devstack.kafka import KafkaNode
from devstack.standins import free_port
from devstack.standins import wait_http as wait_until_serving  # noqa: F401 - shared helper
from tests.kafka import Bus, namespace_on

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def kafka_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaNode]:
    """The session's Apache Kafka node (devstack/kafka.py), started on first use."""
    home = tmp_path_factory.mktemp("kafka")
    node = KafkaNode(home=home, port=free_port(), controller_port=free_port()).start()
    try:
        yield node
    finally:
        node.stop(timeout=15)


@pytest.fixture(scope="session")
def kafka_broker(kafka_node: KafkaNode) -> str:
    """The session broker's bootstrap address, "127.0.0.1:PORT"; tests share it
    through topic namespaces and groups of their own (tests/kafka.py)."""
    return kafka_node.bootstrap


@pytest.fixture
def bus(kafka_broker: str) -> Iterator[Bus]:
    """A namespace of this test's own on the session broker, every MMS topic in
    it with one partition."""
    with namespace_on(kafka_broker) as new:
        yield new


@pytest.fixture(scope="session")
def schema_registry_url() -> Iterator[str]:
    """One schema registry stand-in for the session: tests use subjects of their own."""
    with standins.schema_registry() as registry:
        yield registry.url


@pytest.fixture(scope="session")
def auth_service_url() -> Iterator[str]:
    with standins.auth_service(secret="test-secret-" + "x" * 40) as auth:
        yield auth.url


@pytest.fixture(autouse=True)
def _auth_service(settings, auth_service_url: str) -> None:
    settings.AUTH_SERVICE_URL = auth_service_url
    settings.DISABLE_AUTH = False


@pytest.fixture(autouse=True)
def _clean_redis() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


TokenFactory = Callable[..., str]


@pytest.fixture
def issue_token(auth_service_url: str) -> TokenFactory:
    def issue(
        sub: str = "alice",
        roles: tuple[str, ...] = ("ops",),
        participant_id: str | None = None,
        ttl_seconds: int = 600,
    ) -> str:
        body: dict[str, object] = {"sub": sub, "roles": list(roles), "ttl_seconds": ttl_seconds}
        if participant_id:
            body["participant_id"] = participant_id
        response = httpx.post(f"{auth_service_url}/v1/tokens", json=body, timeout=5)
        response.raise_for_status()
        return str(response.json()["token"])

    return issue


ClientFactory = Callable[..., APIClient]


@pytest.fixture
def api_client(issue_token: TokenFactory) -> ClientFactory:
    """api_client("ops") -> a client sending a real token with those roles."""

    def make(*roles: str, sub: str | None = None, participant_id: str | None = None) -> APIClient:
        client = APIClient()
        if roles:
            token = issue_token(
                sub=sub or f"{'-'.join(roles)}-user", roles=roles, participant_id=participant_id
            )
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client

    return make


@pytest.fixture
def ops(api_client: ClientFactory) -> APIClient:
    return api_client("ops", sub="olga-ops")


@pytest.fixture
def finance(api_client: ClientFactory) -> APIClient:
    return api_client("finance", sub="fred-finance")


@pytest.fixture
def viewer(api_client: ClientFactory) -> APIClient:
    return api_client("viewer", sub="vic-viewer")


def pytest_report_header() -> str:
    import quoting_worker.core as core
    from quoting_worker.core import engine

    return f"quoting core: {core.BUILD} ({engine.__file__})"
