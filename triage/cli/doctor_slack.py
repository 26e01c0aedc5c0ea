"""``triage doctor``'s Slack check: the token works, the bot is in every routed channel."""

from __future__ import annotations

from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError

from triage.cli.doctor_common import Check, describe
from triage.deliver.routing import Router
from triage.deliver.slack import web_client
from triage.errors import TriageError
from triage.settings import Settings


def _is_channel_id(channel: str) -> bool:
    return not channel.startswith("#")


async def check_slack(settings: Settings) -> Check:
    try:
        token = settings.slack_bot_token()
    except TriageError as exc:
        return Check("fail", "slack", str(exc))
    if token is None:
        return Check("off", "slack", "set TRIAGE_SLACK_BOT_TOKEN (or TRIAGE_SLACK_BOT_TOKEN_FILE)")
    try:
        router = Router.from_settings(settings.routing)
    except TriageError as exc:
        return Check("fail", "slack", f"routing: {exc}")
    channels = list(
        dict.fromkeys([*router.default.channels, *(c for r in router.rules for c in r.channels)])
    )
    async with aiohttp.ClientSession() as session:
        client = web_client(settings.slack, token, session)
        try:
            auth = await client.auth_test()
        except (SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
            return Check("fail", "slack", f"auth.test: {describe(exc)}")
        who = f"bot {auth.get('user')} in {auth.get('team')}"
        try:
            problems = await _channel_problems(client, channels)
        except SlackApiError as exc:
            if exc.response.get("error") == "missing_scope":
                return Check(
                    "ok",
                    "slack",
                    f"{who}; channels not checked: the token lacks channels:read "
                    f"(groups:read for private ones)",
                )
            return Check("fail", "slack", f"{who}; channels: {describe(exc)}")
        except (SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
            return Check("fail", "slack", f"{who}; channels: {describe(exc)}")
    if problems:
        return Check("fail", "slack", f"{who}; " + "; ".join(problems))
    return Check("ok", "slack", f"{who}; the bot is in all {len(channels)} routed channel(s)")


async def _channel_problems(client: Any, channels: list[str]) -> list[str]:
    missing: list[str] = []
    not_member: list[str] = []
    by_name: dict[str, dict[str, Any]] = {}
    if any(not _is_channel_id(c) for c in channels):
        cursor = None
        while True:
            page = await client.conversations_list(
                types="public_channel,private_channel",
                exclude_archived=True,
                limit=1000,
                cursor=cursor,
            )
            for ch in page.get("channels") or []:
                by_name[str(ch.get("name"))] = ch
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
    for channel in channels:
        if _is_channel_id(channel):
            try:
                found = (await client.conversations_info(channel=channel)).get("channel")
            except SlackApiError as exc:
                if exc.response.get("error") != "channel_not_found":
                    raise
                found = None
        else:
            found = by_name.get(channel.removeprefix("#"))
        if found is None:
            missing.append(channel)
        elif not found.get("is_member"):
            not_member.append(channel)
    problems = []
    if missing:
        problems.append(f"missing channel(s): {', '.join(missing)}")
    if not_member:
        problems.append(f"bot not invited to: {', '.join(not_member)}")
    return problems
