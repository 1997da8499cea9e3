"""The Node.js client in tests/node calls a real server: the proto works for other languages."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from triage.core.artifacts import CURRENT
from triage.rpc.app import ServeConfig, TriageServer

NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture
def server(models_dir: Path) -> Iterator[TriageServer]:
    running = TriageServer(ServeConfig(model_path=models_dir / CURRENT, port=0, watch_seconds=0))
    yield running.start()
    running.stop(grace=0)


def test_node_client_calls_classify_batch_and_health(server: TriageServer) -> None:
    node = shutil.which("node")
    installed = (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir()
    if node is None or not installed:
        if os.environ.get("CI"):
            pytest.fail("CI must install the Node client: npm ci --prefix tests/node")
        pytest.skip("node or tests/node/node_modules missing (npm ci --prefix tests/node)")
    done = subprocess.run(
        [node, "--test", "client.test.mjs"],
        cwd=NODE_DIR,
        env={**os.environ, "TRIAGE_TARGET": f"127.0.0.1:{server.port}"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "# pass 5" in done.stdout and "# fail 0" in done.stdout
