from tests.fixtures_servers import *  # noqa: F403
