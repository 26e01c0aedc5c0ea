"""``triage doctor``'s NATS check: server, JetStream, and triage's stream and KV bucket."""

from __future__ import annotations

import asyncio

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client

from triage.cli.doctor_common import Check, describe, safe_url
from triage.settings import Settings


async def _quiet(exc: Exception) -> None:
    pass


async def _port_open(port: int) -> bool:
    try:
        async with asyncio.timeout(1):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def check_nats(settings: Settings) -> Check:
    cfg = settings.nats
    url = cfg.url
    if url is None:
        if not await _port_open(cfg.embedded_port):
            return Check(
                "off",
                "nats",
                f"not running (`triage serve` starts the embedded server on port "
                f"{cfg.embedded_port}; set TRIAGE_NATS_URL for an external one)",
            )
        url = f"nats://127.0.0.1:{cfg.embedded_port}"
    shown = safe_url(url)
    try:
        nc: Client = await nats.connect(
            url, connect_timeout=3, max_reconnect_attempts=1, error_cb=_quiet
        )
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        return Check("fail", "nats", f"{shown}: cannot connect: {describe(exc)}")
    try:
        js = nc.jetstream(timeout=5)
        try:
            account = await js.account_info()
        except nats.js.errors.ServiceUnavailableError:
            return Check("fail", "nats", f"{shown}: JetStream is not enabled (nats-server -js)")
        except (nats.errors.Error, TimeoutError) as exc:
            return Check("fail", "nats", f"{shown}: JetStream: {describe(exc)}")
        missing = []
        messages = 0
        try:
            info = await js.stream_info(cfg.stream)
            messages = info.state.messages
        except nats.js.errors.NotFoundError:
            missing.append(f"stream {cfg.stream}")
        try:
            await js.key_value(cfg.kv_bucket)
        except nats.js.errors.BucketNotFoundError:
            missing.append(f"KV bucket {cfg.kv_bucket}")
        if missing:
            return Check(
                "fail",
                "nats",
                f"{shown}: JetStream up but {' and '.join(missing)} missing "
                f"(any triage process creates them when it starts)",
            )
        return Check(
            "ok",
            "nats",
            f"{shown}: JetStream ({account.streams} streams), stream {cfg.stream} "
            f"({messages} messages), KV bucket {cfg.kv_bucket}",
        )
    except (nats.errors.Error, TimeoutError) as exc:
        return Check("fail", "nats", f"{shown}: {describe(exc)}")
    finally:
        await nc.close()
