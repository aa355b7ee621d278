"""Held-out acceptance tests for userdir-permission-cache (never shown to a model)."""

import pytest

from userdir import Database, UserDirectory


@pytest.fixture
def db():
    database = Database()
    yield database
    database.close()


def test_repeated_checks_for_one_user_cost_one_query(db):
    directory = UserDirectory(db)
    alice = directory.add_user("alice")
    directory.grant(alice, "reports:read")
    directory.grant(alice, "reports:write")
    before = db.queries
    for _ in range(50):
        assert directory.has_permission(alice, "reports:read")
        assert directory.has_permission(alice, "reports:write")
        assert not directory.has_permission(alice, "admin")
    assert db.queries - before == 1


def test_permissions_share_the_cache(db):
    directory = UserDirectory(db)
    alice = directory.add_user("alice")
    directory.grant(alice, "reports:read")
    before = db.queries
    assert directory.has_permission(alice, "reports:read")
    assert directory.permissions(alice) == {"reports:read"}
    assert directory.permissions(alice) == {"reports:read"}
    assert db.queries - before == 1


def test_users_are_cached_separately(db):
    directory = UserDirectory(db)
    alice = directory.add_user("alice")
    bob = directory.add_user("bob")
    directory.grant(alice, "reports:read")
    before = db.queries
    for _ in range(5):
        assert directory.has_permission(alice, "reports:read")
        assert not directory.has_permission(bob, "reports:read")
    assert db.queries - before == 2


def test_permissions_returns_a_copy(db):
    directory = UserDirectory(db)
    alice = directory.add_user("alice")
    directory.grant(alice, "reports:read")
    perms = directory.permissions(alice)
    perms.add("admin")
    assert not directory.has_permission(alice, "admin")
