import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.skip_guard", "pytester", "tests.plans"]

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = Path(os.environ.get("PORTAL_SHARED_FIXTURES", REPO_ROOT.parent / "shared" / "fixtures"))


@pytest.fixture(autouse=True)
def forget_verified_tokens():
    """The API remembers verified tokens per process: no test sees another's."""
    from deliveries.services import forget_verified_tokens

    forget_verified_tokens()
    yield
    forget_verified_tokens()


@pytest.fixture
def shared_fixture():
    """Path to a real-world file in ../shared/fixtures (PORTAL_SHARED_FIXTURES); skips when absent."""

    def find(relative: str) -> Path:
        path = SHARED_FIXTURES / relative
        if not path.exists():
            pytest.skip(f"shared fixture {relative} not found under {SHARED_FIXTURES} (set PORTAL_SHARED_FIXTURES)")
        return path

    return find


@pytest.fixture
def users(db):
    """The portal's cast: one user per role, and an outsider who is signed in but holds no role."""
    from portal.roles import Role
    from tests.factories import UserFactory

    class Cast:
        developer = UserFactory(username="dev", roles=[Role.DEVELOPER])
        techlead = UserFactory(username="lead", roles=[Role.TECHLEAD])
        operator = UserFactory(username="ops", roles=[Role.OPERATOR])
        outsider = UserFactory(username="outsider")

    return Cast
