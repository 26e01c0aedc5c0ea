"""Redaction rules, most specific first, and how one rule rewrites text without re-redacting."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from triage.analyse.redaction_patterns import (
    BOUNDARY_AFTER,
    BOUNDARY_BEFORE,
    KEY,
    KEY_HINTS,
    SECRET_WORDS,
    SEP,
    SHORT_WORDS,
    VALUE,
    VALUE_GROUPS,
    VENDOR,
    Q,
    keep_first_word,
    keep_value,
    key_kind,
)

PLACEHOLDER = re.compile(r"\[REDACTED:[a-z0-9_]+\]")
_ESCAPED_SPACE = re.compile(r"\\[nrt]")


def placeholder(kind: str) -> str:
    return f"[REDACTED:{kind}]"


@dataclass(frozen=True)
class Rule:
    kind: str | Callable[[re.Match[str]], str]
    pattern: re.Pattern[str]
    # Groups that may hold the secret, the first that took part is replaced; none = whole match.
    groups: tuple[str, ...] = ()
    # True for a match that only looks like a secret (prose, templates, flags).
    keep: Callable[[re.Match[str]], bool] | None = None
    # Lower-case substrings of which the text must contain one: skips hopeless regex scans.
    hints: tuple[str, ...] = ()


def make_rule(
    kind: str | Callable[[re.Match[str]], str],
    pattern: str,
    groups: tuple[str, ...] = (),
    keep: Callable[[re.Match[str]], bool] | None = None,
    hints: tuple[str, ...] = (),
    flags: int = 0,
) -> Rule:
    return Rule(kind, re.compile(pattern, flags), groups, keep, hints)


RULES: tuple[Rule, ...] = (
    # PEM / PGP private keys, also inside JSON with escaped newlines, also cut off by a log limit.
    make_rule(
        "private_key",
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        # The body stops at the next BEGIN: unterminated blocks must not make this quadratic.
        r"(?:(?:[^-]|-(?!----BEGIN )){0,20000}?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        r"|(?:(?:\s|\\[nr])*[A-Za-z0-9+/=]{16,})*)",
        hints=("-----begin",),
    ),
    make_rule(
        "jwt",
        rf"{BOUNDARY_BEFORE}eyJ[A-Za-z0-9_-]{{8,}}\.eyJ[A-Za-z0-9_-]{{8,}}\.[A-Za-z0-9_-]*",
        hints=("eyj",),
    ),
    # One alternation for all vendors: a single scan instead of one per vendor.
    make_rule(
        lambda m: VENDOR[int((m.lastgroup or "k0")[1:])][0],
        BOUNDARY_BEFORE
        + "(?:"
        + "|".join(f"(?P<k{i}>{body})" for i, (_, body) in enumerate(VENDOR))
        + ")"
        + BOUNDARY_AFTER,
    ),
    # Bot tokens sit right after "/bot" in API URLs.
    make_rule(
        "telegram_bot_token",
        r"(?:(?<=/bot)|(?<![A-Za-z0-9_]))\d{8,10}:AA[A-Za-z0-9_-]{33}(?![A-Za-z0-9_-])",
        hints=(":aa",),
    ),
    # Azure storage / Service Bus connection strings and SAS signatures.
    make_rule(
        "azure_storage_key",
        r"(?i)\bAccountKey=(?P<s>[A-Za-z0-9+/]{20,}={0,2})",
        ("s",),
        hints=("accountkey=",),
    ),
    make_rule(
        "azure_shared_access_key",
        r"(?i)\bSharedAccessKey=(?P<s>[A-Za-z0-9+/]{20,}=*)",
        ("s",),
        hints=("sharedaccesskey=",),
    ),
    make_rule("azure_sas", r"(?i)[?&]sig=(?P<s>[A-Za-z0-9%+/=]{16,})", ("s",), hints=("sig=",)),
    # Signed URLs (S3/GCS presigned, CloudFront, webhooks): the signature authorises the request.
    # Tokens, keys and passwords in query strings (?token=, &api_key=) are key=value below.
    make_rule(
        "url_signature",
        r"(?i)(?<=[?&;])(?:x-(?:amz|goog)-signature|signature|sig|hmac|x-signature)="
        r"(?P<s>[^&#\s\"'<>]+)",
        ("s",),
        hints=("sig", "hmac"),
    ),
    # AWS secret keys have no prefix: only their key names give them away.
    make_rule(
        "aws_secret_key",
        rf"(?i){Q}(?<![A-Za-z0-9_])[A-Za-z_]*?"
        rf"(?:secret_?access_?key|aws_?secret(?:_?access)?_?key){Q}{SEP}"
        r"[\"']?(?P<s>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])",
        ("s",),
        hints=("secret",),
    ),
    make_rule(
        "datadog_key",
        rf"(?i)(?<![A-Za-z0-9])(?:dd|datadog)[_-]?(?:api|app|application)[_-]?key{Q}{SEP}"
        r"[\"']?(?P<s>[a-f0-9]{32,40})\b",
        ("s",),
        hints=("key",),
    ),
    make_rule(
        "slack_webhook",
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/(?P<s>[A-Za-z0-9_/-]{20,})",
        ("s",),
        hints=("hooks.slack.com",),
    ),
    make_rule(
        "discord_webhook",
        r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d+/"
        r"(?P<s>[A-Za-z0-9_-]{20,})",
        ("s",),
        hints=("discord",),
    ),
    # scheme://user:password@host (postgres, mysql, mongodb+srv, redis, amqp, jdbc:..., http).
    make_rule(
        "url_password",
        r"(?i)\b[a-z][a-z0-9+.-]{1,20}://[^\s:@/?#'\"]*:(?P<s>[^\s@/?#'\"]+)@",
        ("s",),
        hints=("://",),
    ),
    # Authorization headers: the scheme stays, the credentials go.
    make_rule(
        lambda m: {"basic": "basic_auth", "bearer": "bearer_token"}.get(
            (m.group("scheme") or "").lower(), "authorization"
        ),
        r"(?i)\b(?:proxy-)?authorization[\"']?[ \t]*[:=][ \t]*[\"']?"
        r"(?:(?P<scheme>bearer|basic|token|bot|apikey|sso-key|key|digest|negotiate|ntlm)[ \t]+)?"
        r"(?P<s>[^\s\"',]{8,})",
        ("s",),
        hints=("authorization",),
    ),
    make_rule(
        "bearer_token",
        r"(?i)\bbearer[ \t]+(?P<s>(?=[A-Za-z._~+/=-]*\d)[A-Za-z0-9._~+/=-]{16,})",
        ("s",),
        hints=("bearer",),
    ),
    # curl -u user:password (elsewhere -u means other things: docker run -u 1000:1000).
    make_rule(
        "password",
        r"\bcurl\b[^\n]{0,300}?[ \t](?:-u|--user)[ \t]+[\"']?[^\s:\"']+:(?P<s>[^\s\"']+)",
        ("s",),
        hints=("curl",),
    ),
    # Kubernetes env entries: {"name": "DB_PASSWORD", "value": "..."} or the YAML form.
    make_rule(
        key_kind,
        rf"(?i)[\"']?name[\"']?[ \t]*:[ \t]*[\"']?{KEY}[\"']?[ \t]*(?:,[ \t]*|\n[ \t]*-?[ \t]*)"
        rf"[\"']?value[\"']?{SEP}{VALUE}",
        VALUE_GROUPS,
        keep_value,
        KEY_HINTS,
    ),
    # YAML and headers, "key: value" starting a line: the value is the rest of the line (words
    # and all, but not a comment). "auth: x509: certificate ..." is an error chain, not YAML.
    make_rule(
        key_kind,
        rf"(?im)^[ \t]*(?:-[ \t]+)?{Q}{KEY}{Q}[ \t]*:[ \t]+"
        # Possessive (Python 3.11): no backtracking over long runs of blanks.
        r"(?P<v4>[^\s\"'#{\[|>&*!%@`]\S*+(?:[ \t]++(?!#)\S++)*+)(?:[ \t]++#[^\n]*+)?[ \t]*+$",
        ("v4",),
        lambda m: keep_value(m) or keep_first_word(m.group("v4").split()[0]),
        KEY_HINTS,
    ),
    # key=value, key: value, "key": "value", KEY="value", --key=value, Server=..;Password=..;
    make_rule(key_kind, rf"(?i){Q}{KEY}{Q}{SEP}{VALUE}", VALUE_GROUPS, keep_value, KEY_HINTS),
    make_rule(
        key_kind,
        rf"(?i)<(?P<key>[A-Za-z0-9_.-]*(?:{SECRET_WORDS}|{SHORT_WORDS}))>"
        r"(?P<v4>[^<]+)</(?P=key)>",
        ("v4",),
        keep_value,
        ("</",),
    ),
    make_rule(
        key_kind,
        r"(?i)(?<![A-Za-z0-9_-])--(?P<key>[A-Za-z0-9-]*(?:password|passwd|token|secret|api-?key))"
        r"[ \t]+(?P<v4>[^\s\"'-][^\s\"']*)",
        ("v4",),
        keep_value,
        ("--",),
    ),
    make_rule(
        "password",
        r"(?i)\bidentified[ \t]+by[ \t]+(?P<q>['\"])(?P<s>[^'\"\n]+)(?P=q)",
        ("s",),
        hints=("identified",),
    ),
)

EMAIL = make_rule(
    "email",
    r"(?<![A-Za-z0-9._%+-])(?!git@)[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
    r"\.[A-Za-z]{2,}(?![A-Za-z0-9-])",
    hints=("@",),
)


def apply_rule(rule: Rule, text: str, lowered: str, counts: Counter[str]) -> str:
    if rule.hints and not any(h in lowered for h in rule.hints):
        return text
    # Placeholders already in the text belong to earlier rules: never re-redact or cut them.
    taken = [m.span() for m in PLACEHOLDER.finditer(text)]

    def replace(m: re.Match[str]) -> str:
        group = next((g for g in rule.groups if m.group(g) is not None), None)
        start, end = m.span(group) if group else m.span()
        if start == end or (rule.keep is not None and rule.keep(m)):
            return m.group(0)
        inner = [(a, b) for a, b in taken if a < end and start < b]
        if any(a < start or b > end for a, b in inner):
            return m.group(0)  # crosses a placeholder's edge
        if inner and not _ESCAPED_SPACE.sub("", PLACEHOLDER.sub("", text[start:end])).strip():
            return m.group(0)  # nothing but placeholders
        for a, b in inner:  # swallowed by this one: one placeholder, one count
            swallowed = text[a + 10 : b - 1]
            counts[swallowed] = max(counts[swallowed] - 1, 0)
        kind = rule.kind if isinstance(rule.kind, str) else rule.kind(m)
        counts[kind] += 1
        whole = m.group(0)
        offset = m.start()
        return whole[: start - offset] + placeholder(kind) + whole[end - offset :]

    return rule.pattern.sub(replace, text)
