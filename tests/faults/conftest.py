"""The store suites' fixtures (tests/store/conftest.py), for the store's side of the rescue race."""

from tests.store.conftest import store, store_factory  # noqa: F401  (fixtures)
