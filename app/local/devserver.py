"""`chat-stream dev`: the whole local stack in the foreground until Ctrl-C."""

from __future__ import annotations

import logging
import signal
import sys
import time

import uvicorn

from app.config import Settings
from app.local.stack import LocalStack, build_app, read_status

logger = logging.getLogger(__name__)


def run_dev(settings: Settings, *, print_curl: bool = True) -> int:
    began = time.perf_counter()
    running = read_status(settings.local_stack_dir)
    if running:
        print(f"chat-stream dev is already running (pid {running['pid']}) at {running['api_url']}")
        return 1
    stack = LocalStack(settings)
    stack.start_database()
    try:
        app = build_app(stack.ctx)
        config = uvicorn.Config(
            app, host=settings.api_host, port=stack.api_port, log_level="warning", lifespan="on"
        )
        server = uvicorn.Server(config)

        original_startup = server.startup

        async def startup(sockets: object = None) -> None:
            await original_startup(sockets)  # type: ignore[arg-type]
            ready = time.perf_counter() - began
            stack.write_status({"ready_seconds": round(ready, 3)})
            print(f"chat-stream dev: local stack ready in {ready:.2f}s at {stack.ctx.api_url}")
            print(f"  database: {stack.ctx.db_url}")
            print("  `chat-stream status --json` shows the keys. Ctrl-C stops everything.")
            if print_curl:
                pass  # the demo curl arrives with the chat stream (issue 4)

        server.startup = startup  # type: ignore[method-assign]
        # uvicorn re-raises the signal it caught after shutting down; make SIGTERM an exit that
        # runs our `finally` (stopping PostgreSQL) instead of killing the process outright.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        stack.clear_status()
        stack.stop_database()
    return 0
