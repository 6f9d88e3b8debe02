"""The JS clients (`clients/js/`): their types are current, they compile, their unit
tests (Node's test runner, `node --test`) pass, and the task page's bundle of the
client (`api/static/taskplane-client.js`) is what the client's source builds to.

The unit tests run the client against scripted HTTP servers (reconnects, tokens, 204,
snapshots, typed errors); tests/e2e/test_js_client_e2e.py runs it against the real
stack. Needs Node and `npm ci --prefix clients/js` (tests/node_tools.py: skipped
locally without them, a failure in CI).
"""

from __future__ import annotations

import re
import subprocess

from tests.node_tools import CLIENTS, built_clients
from tools import client_bundle, client_types


def test_generated_types_are_current() -> None:
    expected = client_types.render(client_types.current_openapi())
    on_disk = client_types.OUTPUT.read_text("utf-8")
    assert on_disk == expected, "clients/js/…/generated.ts is stale: run `make client-types`"


def test_generation_is_deterministic() -> None:
    document = client_types.current_openapi()
    assert client_types.render(document) == client_types.render(document)


def test_typescript_users_code_type_checks() -> None:
    """clients/js/tests/typecheck/usage.ts: narrowing by `type`, typed errors, hook
    signatures; its `@ts-expect-error` lines prove the types also refuse things."""
    node = built_clients()
    tsc = str(CLIENTS / "node_modules" / "typescript" / "bin" / "tsc")
    done = subprocess.run(
        [node, tsc, "-p", "tests/typecheck"],
        cwd=CLIENTS,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"tsc:\n{done.stdout}{done.stderr}"


def test_node_unit_tests_pass() -> None:
    node = built_clients()
    done = subprocess.run(
        [node, "--test", "--test-timeout=60000", "packages/client/test/", "packages/react/test/"],
        cwd=CLIENTS,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"node --test failed:\n{done.stdout[-6000:]}{done.stderr[-2000:]}"


def test_the_task_pages_bundle_of_the_client_is_current() -> None:
    """esbuild (pinned by clients/js/package-lock.json) rebuilds it byte for byte."""
    node = built_clients()
    on_disk = client_bundle.OUTPUT.read_text("utf-8")
    assert on_disk == client_bundle.build(node), (
        "api/static/taskplane-client.js is stale: run `make client-types`"
    )


def test_the_task_page_has_no_stream_code_of_its_own() -> None:
    """One implementation: the page's modules follow tasks through the client's bundle."""
    static = client_bundle.OUTPUT.parent
    own = {path.name: path.read_text("utf-8") for path in static.glob("*.js")}
    del own[client_bundle.OUTPUT.name]
    for name, text in own.items():
        for construct in ("EventSource", "stream-token", "Last-Event-ID", "fetch(`tasks"):
            assert construct not in text, f"api/static/{name} uses {construct}"
    imports = {m for text in own.values() for m in re.findall(r'from "\./([^"]+)"', text)}
    assert client_bundle.OUTPUT.name in imports
