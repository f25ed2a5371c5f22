"""Integration tests run against real infrastructure: every test here is marked ``infra``.

Also provides stand-in service processes (an HTTP server answering ``/livez`` and ``/readyz``) to
exercise the process runner and ``run_services`` without the real services.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from devstack.processes import ManagedProcess
from devstack.pytest_plugin import RunningSandbox
from devstack.sandbox import SampleCredentials, SandboxLauncher

_HERE = Path(__file__).parent

#: A stand-in service: serves HTTP on $HTTP_PORT; ``/env`` answers its environment as JSON;
#: ``$FAKE_NOT_READY_FILE`` existing makes ``/readyz`` answer 503.
STAND_IN_SERVICE = textwrap.dedent(
    '''
    """A stand-in for a service process in the stack's own tests."""
    import json
    import os
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            not_ready = os.environ.get("FAKE_NOT_READY_FILE")
            if self.path == "/readyz" and not_ready and os.path.exists(not_ready):
                status, body = 503, {"status": "starting"}
            elif self.path in ("/livez", "/readyz", "/"):
                status, body = 200, {"status": "ok", "pid": os.getpid()}
            elif self.path == "/env":
                status, body = 200, dict(os.environ)
            else:
                status, body = 404, {}
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format, *args):
            pass


    def main():
        port = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ["HTTP_PORT"])
        print(f"stand-in listening on {port}", flush=True)
        ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


    if __name__ == "__main__":
        main()
    '''
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.infra)


@pytest.fixture(scope="session")
def stand_in_services(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that, first on ``PYTHONPATH``, makes ``python -m connector|importer|notifier`` a stand-in."""
    root = tmp_path_factory.mktemp("stand-in-services")
    (root / "stand_in_service.py").write_text(STAND_IN_SERVICE)
    for name in ("connector", "importer", "notifier", "stand_in_sandbox"):
        package = root / name
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / "__main__.py").write_text("from stand_in_service import main\n\nmain()\n")
    return root


@pytest.fixture(scope="module")
def stand_in_sandbox(stand_in_services: Path, devstack_log_dir: Path) -> Iterator[RunningSandbox]:
    """A stand-in for ``python -m sandbox`` (which these tests do not depend on)."""
    url = "http://{host}:{http_port}"
    launcher = SandboxLauncher(
        args=("-m", "stand_in_sandbox", "{http_port}"),
        stripe_api_base=url,
        stripe_connect_base=url,
        chargebee_api_url_template=url + "/sites/{site}/api/v2",
        ready_urls=(url + "/readyz",),
    )
    ports = launcher.allocate_ports()
    spec = launcher.spec(ports, env={"PYTHONPATH": str(stand_in_services)})
    process = ManagedProcess(spec, devstack_log_dir / "stand-in-sandbox.log").start()
    try:
        yield RunningSandbox(launcher.endpoints(ports), SampleCredentials(), process)
    finally:
        process.stop()
