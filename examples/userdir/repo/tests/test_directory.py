import pytest

from userdir import Database, UnknownUser, UserDirectory


@pytest.fixture
def directory():
    db = Database()
    yield UserDirectory(db)
    db.close()


def test_add_user_returns_distinct_ids(directory):
    alice = directory.add_user("alice")
    bob = directory.add_user("bob")
    assert alice != bob
    assert directory.user_name(alice) == "alice"


def test_unknown_user(directory):
    with pytest.raises(UnknownUser):
        directory.user_name(999)


def test_grant_and_check(directory):
    alice = directory.add_user("alice")
    directory.grant(alice, "reports:read")
    assert directory.has_permission(alice, "reports:read")
    assert not directory.has_permission(alice, "reports:write")
    assert directory.permissions(alice) == {"reports:read"}


def test_grant_twice_is_harmless(directory):
    alice = directory.add_user("alice")
    directory.grant(alice, "reports:read")
    directory.grant(alice, "reports:read")
    assert directory.permissions(alice) == {"reports:read"}


def test_revoke(directory):
    alice = directory.add_user("alice")
    directory.grant(alice, "reports:read")
    directory.revoke(alice, "reports:read")
    assert not directory.has_permission(alice, "reports:read")
    assert directory.permissions(alice) == set()
