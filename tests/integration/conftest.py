"""Integration-test set-up shared by this folder (fixtures live in tests/conftest.py)."""

# Importing alembic reads package metadata from disk. The `db` fixture imports
# storage.migrate inside a coroutine, where blockbuster refuses that read, so load it
# here, at collection time, whatever test runs first.
import storage.migrate  # noqa: F401
