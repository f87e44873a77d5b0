"""The seed relay (`bench/seed/index.ts`, a reconstruction of the seed's Edge Function) started
under Deno from `bench/node_modules` (`npm ci --prefix bench`), as a `Service` the runner can
stream through like `chat-stream serve`.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from app.config import DEFAULT_SYSTEM_PROMPT
from app.local.postgres import free_port
from bench.procs import ROOT, Proc, clean_env
from bench.stack import STANDIN_KEY, Service, Stack
from bench.world import MAX_TOKENS, MODEL, TEMPERATURE

BENCH = ROOT / "bench"
ENTRY = Path("seed") / "index.ts"


def deno_binary(bench: Path = BENCH) -> Path:
    """Deno from the npm package's platform binary (not its Node launcher, which would add a
    Node process to the relay's measured CPU)."""
    found = sorted((bench / "node_modules" / "@deno").glob("linux-*/deno"))
    for candidate in [*found, bench / "node_modules" / "deno" / "deno"]:
        if candidate.is_file() and candidate.stat().st_size > 1_000_000:
            return candidate
    raise RuntimeError(f"no Deno binary under {bench}/node_modules: run `npm ci --prefix bench`")


def start_seed(stack: Stack, name: str = "seed", timeout: float = 60.0) -> Service:
    """The seed on a free port, with the same upstream request settings as the service's
    defaults (model, max tokens, temperature, system prompt), so the stand-in does the same
    work for both; pinned by the stack's `service_prefix` like the service."""
    port = free_port()
    env = clean_env(
        SUPABASE_URL=stack.api_url,
        SUPABASE_ANON_KEY=stack.status["anon_key"],
        ANTHROPIC_API_KEY=STANDIN_KEY,
        ANTHROPIC_BASE_URL=stack.standin_url,
        LLM_MODEL=MODEL,
        LLM_MAX_TOKENS=str(MAX_TOKENS),
        LLM_TEMPERATURE=str(TEMPERATURE),
        SYSTEM_PROMPT=DEFAULT_SYSTEM_PROMPT,
        PORT=str(port),
        DENO_NO_UPDATE_CHECK="1",
        DENO_DIR=str(stack.run_dir / "deno"),
    )
    argv = [*stack.service_prefix, str(deno_binary()), "run", "--node-modules-dir=manual"]
    argv += ["--allow-net", "--allow-env", "--no-prompt", str(ENTRY)]
    proc = stack.procs.start(f"{name}-{port}", argv, env, cwd=BENCH)
    url = f"http://127.0.0.1:{port}"
    wait_answering(proc, f"{url}/functions/v1/chat-stream", timeout)
    return Service(proc, url, 1)


def wait_answering(proc: Proc, url: str, timeout: float) -> None:
    """Poll `url` until it answers at all (the seed has no health route: a GET without a token
    is its 401), the process dies, or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}: {proc.tail()}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{proc.name} did not answer {url} within {timeout}s: {proc.tail()}")
