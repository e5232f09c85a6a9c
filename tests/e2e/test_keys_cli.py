"""``llmserve keys`` and the bind rule, run as a user runs them: real processes, real sockets.

A key made with the CLI works against a running server through the official openai SDK, and a revoke
from the CLI (another process, like another replica) locks it out within the server's 5-second cache.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.live_server import HOST, LiveServer, free_port
from tests.polling import wait_until

pytestmark = pytest.mark.e2e

MASTER = "master-key-for-e2e-tests-0123456789"
CLI_TIMEOUT_S = 60
START_TIMEOUT_S = 60
# The server trusts a looked-up key for 5 s; give the revocation that plus slack to arrive.
REVOKE_VISIBLE_WITHIN_S = 10


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("LLMSERVE_")}
    return {**env, **(extra or {})}


def llmserve(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmserve", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        env=clean_env(env),
        check=False,
    )


def list_keys(data_dir: Path) -> list[dict[str, Any]]:
    listed = llmserve("keys", "list", "--json", "--data-dir", str(data_dir))
    assert listed.returncode == 0, listed.stderr
    keys: list[dict[str, Any]] = json.loads(listed.stdout)["data"]
    return keys


@contextlib.contextmanager
def serving(data_dir: Path, host: str, env: Mapping[str, str]) -> Iterator[LiveServer]:
    """``llmserve serve --host host`` on a free port, reached via 127.0.0.1 once /health answers."""
    port = free_port()
    log_path = data_dir.parent / f"server-{port}.log"
    command = ["serve", "--host", host, "--port", str(port), "--data-dir", str(data_dir)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "llmserve", *command],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=clean_env(env),
        )
    server = LiveServer(f"http://{HOST}:{port}", data_dir, log_path, process)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"llmserve exited with {process.returncode}:\n{server.log_tail()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{server.url}/health", timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"llmserve did not answer /health:\n{server.log_tail()}")
            time.sleep(0.2)
        yield server
    finally:
        server.stop()


def test_create_list_revoke_on_a_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    created = llmserve(
        "keys", "create", "--name", "ci", "--models", "tiny-chat", "--rpm", "30",
        "--max-budget-usd", "12.5", "--budget-period", "daily", "--data-dir", str(data_dir),
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("sk-llm-") and created.stdout == secret + "\n", "stdout is the key alone"
    assert "not shown again" in created.stderr

    [key] = list_keys(data_dir)
    assert (key["name"], key["role"], key["models"], key["rpm"]) == ("ci", "user", ["tiny-chat"], 30)
    assert (key["max_budget_usd"], key["budget_period"]) == (12.5, "daily")
    assert key["key_prefix"] == secret[:12] and key["revoked_at"] is None
    table = llmserve("keys", "list", "--data-dir", str(data_dir))
    assert table.returncode == 0 and key["id"] in table.stdout
    assert secret not in table.stdout + json.dumps(key), "the secret is printed once, at creation"

    revoked = llmserve("keys", "revoke", key["id"], "--data-dir", str(data_dir))
    assert revoked.returncode == 0, revoked.stderr
    assert list_keys(data_dir)[0]["revoked_at"] is not None

    unknown = llmserve("keys", "revoke", "no-such-key", "--data-dir", str(data_dir))
    assert unknown.returncode == 1 and "not found" in unknown.stderr
    invalid = llmserve("keys", "create", "--models", "no-such-group", "--data-dir", str(data_dir))
    assert invalid.returncode == 2 and "no-such-group" in invalid.stderr
    assert len(list_keys(data_dir)) == 1


def test_serve_refuses_a_public_address_without_a_master_key(tmp_path: Path) -> None:
    refused = llmserve("serve", "--host", "0.0.0.0", "--port", str(free_port()), "--data-dir", str(tmp_path))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "auth.allow_remote_without_key" in refused.stderr and "LLMSERVE_MASTER_KEY" in refused.stderr


def test_allow_remote_without_key_serves_everyone_with_a_warning(tmp_path: Path) -> None:
    env = {"LLMSERVE_AUTH__ALLOW_REMOTE_WITHOUT_KEY": "true"}
    with serving(tmp_path / "data", "0.0.0.0", env) as server:
        assert httpx.get(f"{server.url}/v1/models", timeout=10).status_code == 200
        assert "WARNING" in server.log_tail() and "authentication is off" in server.log_tail()


def test_a_cli_key_opens_a_secured_server_until_the_cli_revokes_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    created = llmserve("keys", "create", "--name", "sdk", "--data-dir", str(data_dir))
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    with serving(data_dir, "0.0.0.0", {"LLMSERVE_MASTER_KEY": MASTER}) as server:
        assert "authentication is on" in server.log_tail()
        assert httpx.get(f"{server.url}/v1/models", timeout=10).status_code == 401
        sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key=secret, max_retries=0, timeout=60)
        reply = sdk.chat.completions.create(
            model="tiny-chat", messages=[{"role": "user", "content": "Hello!"}], max_tokens=8, temperature=0
        )
        assert reply.choices[0].message.content

        [key] = list_keys(data_dir)
        assert llmserve("keys", "revoke", key["id"], "--data-dir", str(data_dir)).returncode == 0

        def refused() -> bool:
            try:
                sdk.models.list()
            except openai.AuthenticationError:
                return True
            return False

        wait_until(
            refused, within=REVOKE_VISIBLE_WITHIN_S, interval=0.5, message="the revoked key still works"
        )
