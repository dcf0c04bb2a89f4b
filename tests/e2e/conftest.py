"""Fixtures for the end-to-end suite: real `haneul serve` processes.

Every server runs on a free loopback port with a data directory under pytest's tmp_path (kept
for the last few runs, so `serve.log` is there to read after a failure) and is stopped by pid in
the fixture's teardown, also when the test fails.
"""
import pytest

from support import Api, Cli, start_server


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One server for the tests that only add uniquely named resources to it."""
    srv = start_server(tmp_path_factory.mktemp("shared-server"))
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def api(server):
    return Api(server)


@pytest.fixture(scope="session")
def cli(server):
    return Cli(server)


@pytest.fixture(scope="module")
def module_server(tmp_path_factory):
    """A server of the test module's own, for tests that change server-wide state."""
    srv = start_server(tmp_path_factory.mktemp("module-server"))
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(tmp_path_factory):
    """A server for one test, e.g. one that restarts it."""
    srv = start_server(tmp_path_factory.mktemp("server"))
    yield srv
    srv.stop(kill=True)
