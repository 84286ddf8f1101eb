"""The reliability tests use the end-to-end stack's pieces (tests/e2e)."""

from tests.adapters.test_metadata import metadata_target  # noqa: F401 - shared fixture
from tests.e2e.conftest import broker  # noqa: F401 - shared fixture
