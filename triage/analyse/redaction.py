"""Redaction: secrets and personal data are replaced by typed placeholders before evidence
leaves the investigation (LLM prompt, chat message, JSON Lines file).

``[REDACTED:kind]`` tells a reader what was there without showing it, and keeps the text
around it (``password=[REDACTED:password]``, ``postgres://app:[REDACTED:url_password]@db``).

Hand-written patterns rather than detect-secrets: that library scans files line by line and
reports findings (line number, hashed secret), not spans to replace; it does not see PEM blocks
spread over lines, passwords inside connection strings or e-mail addresses, and its entropy
plugins flag exactly what incident evidence is full of and must keep (git SHAs, UUIDs, image
digests, pod hashes). The token formats follow the vendors' documented prefixes.

Rules run in order, most specific first, each on the text the previous ones left: a vendor
token inside ``api_key=...`` is named by its vendor, and later rules leave placeholders alone.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from collectors.contracts import Evidence
from triage.deliver.routing import RouteDecision
from triage.errors import ConfigError
from triage.models import DeliveryRequest
from triage.settings import RedactionSettings
from triage.telemetry import Metrics

OnRedaction = Callable[[str, int], None]

_PLACEHOLDER = re.compile(r"\[REDACTED:[a-z0-9_]+\]")
_ESCAPED_SPACE = re.compile(r"\\[nrt]")


def placeholder(kind: str) -> str:
    return f"[REDACTED:{kind}]"


@dataclass(frozen=True)
class _Rule:
    kind: str | Callable[[re.Match[str]], str]
    pattern: re.Pattern[str]
    # Groups that may hold the secret, the first that took part is replaced; none = whole match.
    groups: tuple[str, ...] = ()
    # True for a match that only looks like a secret (prose, templates, flags).
    keep: Callable[[re.Match[str]], bool] | None = None
    # Lower-case substrings of which the text must contain one: skips hopeless regex scans.
    hints: tuple[str, ...] = ()


def _rule(
    kind: str | Callable[[re.Match[str]], str],
    pattern: str,
    groups: tuple[str, ...] = (),
    keep: Callable[[re.Match[str]], bool] | None = None,
    hints: tuple[str, ...] = (),
    flags: int = 0,
) -> _Rule:
    return _Rule(kind, re.compile(pattern, flags), groups, keep, hints)


_BOUNDARY_BEFORE = r"(?<![A-Za-z0-9_])"
_BOUNDARY_AFTER = r"(?![A-Za-z0-9_])"


# --- vendor formats: a fixed prefix or shape is enough, no context needed -----------------------
_VENDOR: list[tuple[str, str]] = [
    ("aws_access_key", r"(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}"),
    ("github_token", r"gh[pousr]_[A-Za-z0-9]{36,255}"),
    ("github_token", r"github_pat_[A-Za-z0-9_]{50,255}"),
    ("gitlab_token", r"gl(?:pat|dt|rt|ptt|cbt|oas|soat|ft|imt|agent)-[A-Za-z0-9_-]{20,}"),
    ("slack_token", r"xox[abposre]-[A-Za-z0-9-]{10,}"),
    ("slack_token", r"xapp-\d-[A-Za-z0-9-]{10,}"),
    ("stripe_key", r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"),
    ("stripe_webhook_secret", r"whsec_[A-Za-z0-9+/=]{24,}"),
    ("twilio_api_key", r"SK[0-9a-fA-F]{32}"),
    ("sendgrid_key", r"SG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}"),
    ("npm_token", r"npm_[A-Za-z0-9]{36}"),
    ("pypi_token", r"pypi-AgE[A-Za-z0-9_-]{50,}"),
    ("heroku_api_key", r"HRKU-[A-Za-z0-9_-]{58,}"),
    ("digitalocean_token", r"do[por]_v1_[a-f0-9]{64}"),
    ("anthropic_key", r"sk-ant-[A-Za-z0-9_-]{32,}"),
    ("openai_key", r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}|sk-[A-Za-z0-9]{32,}"),
    ("huggingface_token", r"(?:hf_|api_org_)[A-Za-z0-9]{30,}"),
    ("gcp_api_key", r"AIza[0-9A-Za-z_-]{35}"),
    ("google_oauth_token", r"ya29\.[0-9A-Za-z_-]{20,}"),
    ("google_client_secret", r"GOCSPX-[0-9A-Za-z_-]{28}"),
    ("azure_client_secret", r"[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}"),
    ("shopify_token", r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}"),
    ("vault_token", r"hv[sbr]\.[A-Za-z0-9_-]{24,}"),
    ("grafana_token", r"glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}"),
    ("grafana_token", r"glc_[A-Za-z0-9+/]{32,}={0,2}"),
    ("newrelic_key", r"NR(?:AK|II|JS)-[A-Za-z0-9]{19,32}"),
    ("databricks_token", r"dapi[a-f0-9]{32}(?:-\d)?"),
    ("docker_token", r"dckr_pat_[A-Za-z0-9_-]{27,}"),
    ("atlassian_token", r"ATATT3[A-Za-z0-9_=-]{50,}"),
    ("postman_key", r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}"),
    ("linear_key", r"lin_api_[A-Za-z0-9]{40}"),
    ("square_token", r"sq0(?:atp|csp)-[A-Za-z0-9_-]{22,}"),
    ("mailchimp_key", r"[0-9a-f]{32}-us\d{1,2}"),
    ("sentry_token", r"sntry[su]_[A-Za-z0-9+/=_]{40,}"),
    ("age_secret_key", r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}"),
    ("alibaba_access_key", r"LTAI[A-Za-z0-9]{12,20}"),
    ("tailscale_key", r"tskey-[a-z]+-[A-Za-z0-9]{6,}-[A-Za-z0-9]{10,}"),
    ("pulumi_token", r"pul-[a-f0-9]{40}"),
    ("terraform_token", r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,}"),
    ("supabase_token", r"sbp_[a-f0-9]{40}"),
    ("sonarqube_token", r"sq[pau]_[a-f0-9]{40}"),
    ("notion_token", r"(?:ntn_[A-Za-z0-9]{40,}|secret_[A-Za-z0-9]{43})"),
    ("airtable_token", r"pat[A-Za-z0-9]{14}\.[a-f0-9]{64}"),
    ("groq_key", r"gsk_[A-Za-z0-9]{48,}"),
    ("replicate_token", r"r8_[A-Za-z0-9]{37,}"),
    ("perplexity_key", r"pplx-[A-Za-z0-9]{40,}"),
    ("onepassword_token", r"ops_eyJ[A-Za-z0-9+/=_-]{50,}"),
    ("mapbox_token", r"sk\.eyJ[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}"),
    ("circleci_token", r"CCIPAT_[A-Za-z0-9]{22}_[a-f0-9]{40}"),
    ("buildkite_token", r"bkua_[a-f0-9]{40}"),
    ("flyio_token", r"fo1_[A-Za-z0-9_-]{43}"),
    ("figma_token", r"figd_[A-Za-z0-9_-]{40,}"),
    ("doppler_token", r"dp\.(?:pt|st|sa|ct|scim|audit)\.(?:[a-z0-9_-]{1,40}\.)?[A-Za-z0-9]{40,}"),
]

# --- key = value: the key says the value is secret ----------------------------------------------
# Words a key ends with (``DB_PASSWORD``, ``clientSecret``, ``x-api-key``); a key that merely
# contains one (``password_file``, ``secretName``, ``token_count``) names no secret.
_SECRET_WORDS = (
    r"password|passwd|passphrase|secret|token|credentials?|api[_-]?key|apikey"
    r"|private[_-]?key(?:[_-]?id)?"
    r"|(?:access|secret|account|master|encryption|signing|shared[_-]?access|app|application"
    r"|license|auth|subscription|client)[_-]?key"
)
# Short words only count as a whole word or after a separator (``DB_PWD``, not ``OLDPWD``).
_SHORT_WORDS = r"pwd|pass|auth"
_KEY = (
    rf"(?<![A-Za-z0-9_.-])(?P<key>[A-Za-z0-9_.-]*?(?:{_SECRET_WORDS})"
    rf"|(?:[A-Za-z0-9_.-]*[_.-])?(?:{_SHORT_WORDS}))(?![A-Za-z0-9_.-])"
)
_KEY_HINTS = ("pass", "pwd", "secret", "token", "key", "auth", "credential")
_Q = r"(?:\\?[\"'])?"  # optional quote around a key, also escaped JSON inside JSON
_SEP = r"[ \t]*(?P<sep>:=|=>|[:=])[ \t]*"
# A quoted value runs to its closing quote (spaces and all); a bare one to a delimiter.
_VALUE = (
    r"(?:\"(?P<v1>(?:[^\"\\\n]|\\.)*)\""
    r"|\\\"(?P<v2>(?:(?!\\\").)*)\\\""
    r"|'(?P<v3>[^'\n]*)'"
    r"|(?P<v4>[^\s\"',;&<>{}()\[\]\\]+))"
)
_VALUE_GROUPS = ("v1", "v2", "v3", "v4")

# Values that are not secrets even under a secret key: flags, states, templates, masks.
_HARMLESS = frozenset(
    re.split(
        r"\s+",
        "true false yes no on off none null nil undefined empty unset required optional enabled "
        "disabled expired invalid missing mismatch denied rejected redacted hidden masked unknown "
        "set not ok",
    )
)
_TEMPLATE = re.compile(r"^(?:\$\{.*\}|\$\(.*\)|\$[A-Z_][A-Z0-9_]*|<[^>]*>|\{\{.*\}\}|%s|[*xX•.]+)$")


def _secret_value(m: re.Match[str]) -> tuple[str, bool]:
    for g in _VALUE_GROUPS:
        if g in m.re.groupindex and m.group(g) is not None:
            return m.group(g), g == "v4"
    return "", False


def _keep_value(m: re.Match[str]) -> bool:
    value, bare = _secret_value(m)
    text = m.string
    if not value.strip() or value.lower() in _HARMLESS or _TEMPLATE.match(value):
        return True
    if bare and text[m.end() : m.end() + 1] == "(":
        return True  # a call in a traceback's source line: password = decode(raw)
    if bare and "sep" in m.re.groupindex and m.group("sep") == ":":
        # ``key: value`` in prose is an error chain: "refresh token: context deadline exceeded",
        # "auth: x509: certificate signed by unknown authority".
        if value.endswith(":"):
            return True
        rest = text[m.end() : m.end() + 2]
        if value.isalpha() and len(rest) == 2 and rest[0] in " \t" and rest[1].isalpha():
            return True
    return False


def _keep_first_word(word: str) -> bool:
    return word.endswith(":") or word.rstrip(";,").lower() in _HARMLESS


def _key_kind(m: re.Match[str]) -> str:
    key = re.sub(r"[^a-z]", "", m.group("key").lower())
    if key.endswith(("password", "passwd", "passphrase", "pwd", "pass")):
        return "password"
    if key.endswith("token"):
        return "token"
    if key.endswith(("privatekey", "privatekeyid")):
        return "private_key"
    if key.endswith("secret"):
        return "secret"
    if key.endswith(("credential", "credentials")):
        return "credentials"
    if key.endswith("auth"):
        return "auth"
    return "api_key"


_RULES: tuple[_Rule, ...] = (
    # PEM / PGP private keys, also inside JSON with escaped newlines, also cut off by a log limit.
    _rule(
        "private_key",
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        # The body stops at the next BEGIN: unterminated blocks must not make this quadratic.
        r"(?:(?:[^-]|-(?!----BEGIN )){0,20000}?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        r"|(?:(?:\s|\\[nr])*[A-Za-z0-9+/=]{16,})*)",
        hints=("-----begin",),
    ),
    _rule(
        "jwt",
        rf"{_BOUNDARY_BEFORE}eyJ[A-Za-z0-9_-]{{8,}}\.eyJ[A-Za-z0-9_-]{{8,}}\.[A-Za-z0-9_-]*",
        hints=("eyj",),
    ),
    # One alternation for all vendors: a single scan instead of one per vendor.
    _rule(
        lambda m: _VENDOR[int((m.lastgroup or "k0")[1:])][0],
        _BOUNDARY_BEFORE
        + "(?:"
        + "|".join(f"(?P<k{i}>{body})" for i, (_, body) in enumerate(_VENDOR))
        + ")"
        + _BOUNDARY_AFTER,
    ),
    # Bot tokens sit right after "/bot" in API URLs.
    _rule(
        "telegram_bot_token",
        r"(?:(?<=/bot)|(?<![A-Za-z0-9_]))\d{8,10}:AA[A-Za-z0-9_-]{33}(?![A-Za-z0-9_-])",
        hints=(":aa",),
    ),
    # Azure storage / Service Bus connection strings and SAS signatures.
    _rule(
        "azure_storage_key",
        r"(?i)\bAccountKey=(?P<s>[A-Za-z0-9+/]{20,}={0,2})",
        ("s",),
        hints=("accountkey=",),
    ),
    _rule(
        "azure_shared_access_key",
        r"(?i)\bSharedAccessKey=(?P<s>[A-Za-z0-9+/]{20,}=*)",
        ("s",),
        hints=("sharedaccesskey=",),
    ),
    _rule("azure_sas", r"(?i)[?&]sig=(?P<s>[A-Za-z0-9%+/=]{16,})", ("s",), hints=("sig=",)),
    # Signed URLs (S3/GCS presigned, CloudFront, webhooks): the signature authorises the request.
    # Tokens, keys and passwords in query strings (?token=, &api_key=) are key=value below.
    _rule(
        "url_signature",
        r"(?i)(?<=[?&;])(?:x-(?:amz|goog)-signature|signature|sig|hmac|x-signature)="
        r"(?P<s>[^&#\s\"'<>]+)",
        ("s",),
        hints=("sig", "hmac"),
    ),
    # AWS secret keys have no prefix: only their key names give them away.
    _rule(
        "aws_secret_key",
        rf"(?i){_Q}(?<![A-Za-z0-9_])[A-Za-z_]*?"
        rf"(?:secret_?access_?key|aws_?secret(?:_?access)?_?key){_Q}{_SEP}"
        r"[\"']?(?P<s>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])",
        ("s",),
        hints=("secret",),
    ),
    _rule(
        "datadog_key",
        rf"(?i)(?<![A-Za-z0-9])(?:dd|datadog)[_-]?(?:api|app|application)[_-]?key{_Q}{_SEP}"
        r"[\"']?(?P<s>[a-f0-9]{32,40})\b",
        ("s",),
        hints=("key",),
    ),
    _rule(
        "slack_webhook",
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/(?P<s>[A-Za-z0-9_/-]{20,})",
        ("s",),
        hints=("hooks.slack.com",),
    ),
    _rule(
        "discord_webhook",
        r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d+/"
        r"(?P<s>[A-Za-z0-9_-]{20,})",
        ("s",),
        hints=("discord",),
    ),
    # scheme://user:password@host (postgres, mysql, mongodb+srv, redis, amqp, jdbc:..., http).
    _rule(
        "url_password",
        r"(?i)\b[a-z][a-z0-9+.-]{1,20}://[^\s:@/?#'\"]*:(?P<s>[^\s@/?#'\"]+)@",
        ("s",),
        hints=("://",),
    ),
    # Authorization headers: the scheme stays, the credentials go.
    _rule(
        lambda m: {"basic": "basic_auth", "bearer": "bearer_token"}.get(
            (m.group("scheme") or "").lower(), "authorization"
        ),
        r"(?i)\b(?:proxy-)?authorization[\"']?[ \t]*[:=][ \t]*[\"']?"
        r"(?:(?P<scheme>bearer|basic|token|bot|apikey|sso-key|key|digest|negotiate|ntlm)[ \t]+)?"
        r"(?P<s>[^\s\"',]{8,})",
        ("s",),
        hints=("authorization",),
    ),
    _rule(
        "bearer_token",
        r"(?i)\bbearer[ \t]+(?P<s>(?=[A-Za-z._~+/=-]*\d)[A-Za-z0-9._~+/=-]{16,})",
        ("s",),
        hints=("bearer",),
    ),
    # curl -u user:password (elsewhere -u means other things: docker run -u 1000:1000).
    _rule(
        "password",
        r"\bcurl\b[^\n]{0,300}?[ \t](?:-u|--user)[ \t]+[\"']?[^\s:\"']+:(?P<s>[^\s\"']+)",
        ("s",),
        hints=("curl",),
    ),
    # Kubernetes env entries: {"name": "DB_PASSWORD", "value": "..."} or the YAML form.
    _rule(
        _key_kind,
        rf"(?i)[\"']?name[\"']?[ \t]*:[ \t]*[\"']?{_KEY}[\"']?[ \t]*(?:,[ \t]*|\n[ \t]*-?[ \t]*)"
        rf"[\"']?value[\"']?{_SEP}{_VALUE}",
        _VALUE_GROUPS,
        _keep_value,
        _KEY_HINTS,
    ),
    # YAML and headers, "key: value" starting a line: the value is the rest of the line (words
    # and all, but not a comment). "auth: x509: certificate ..." is an error chain, not YAML.
    _rule(
        _key_kind,
        rf"(?im)^[ \t]*(?:-[ \t]+)?{_Q}{_KEY}{_Q}[ \t]*:[ \t]+"
        # Possessive (Python 3.11): no backtracking over long runs of blanks.
        r"(?P<v4>[^\s\"'#{\[|>&*!%@`]\S*+(?:[ \t]++(?!#)\S++)*+)(?:[ \t]++#[^\n]*+)?[ \t]*+$",
        ("v4",),
        lambda m: _keep_value(m) or _keep_first_word(m.group("v4").split()[0]),
        _KEY_HINTS,
    ),
    # key=value, key: value, "key": "value", KEY="value", --key=value, Server=..;Password=..;
    _rule(_key_kind, rf"(?i){_Q}{_KEY}{_Q}{_SEP}{_VALUE}", _VALUE_GROUPS, _keep_value, _KEY_HINTS),
    _rule(
        _key_kind,
        rf"(?i)<(?P<key>[A-Za-z0-9_.-]*(?:{_SECRET_WORDS}|{_SHORT_WORDS}))>"
        r"(?P<v4>[^<]+)</(?P=key)>",
        ("v4",),
        _keep_value,
        ("</",),
    ),
    _rule(
        _key_kind,
        r"(?i)(?<![A-Za-z0-9_-])--(?P<key>[A-Za-z0-9-]*(?:password|passwd|token|secret|api-?key))"
        r"[ \t]+(?P<v4>[^\s\"'-][^\s\"']*)",
        ("v4",),
        _keep_value,
        ("--",),
    ),
    _rule(
        "password",
        r"(?i)\bidentified[ \t]+by[ \t]+(?P<q>['\"])(?P<s>[^'\"\n]+)(?P=q)",
        ("s",),
        hints=("identified",),
    ),
)

_EMAIL = _rule(
    "email",
    r"(?<![A-Za-z0-9._%+-])(?!git@)[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
    r"\.[A-Za-z]{2,}(?![A-Za-z0-9-])",
    hints=("@",),
)


class Redactor:
    """Replaces secrets and personal data in text by ``[REDACTED:kind]``.

    ``extra_patterns`` are regular expressions of the deployment's own secrets (kind
    ``custom``); a named group ``secret`` limits the replacement to that group.
    ``on_redaction(kind, count)`` is called once per kind and call, for the metric.
    """

    def __init__(
        self,
        *,
        emails: bool = True,
        extra_patterns: list[str] | None = None,
        on_redaction: OnRedaction | None = None,
    ) -> None:
        rules = list(_RULES)
        if emails:
            rules.append(_EMAIL)
        for pattern in extra_patterns or []:
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ConfigError(
                    f"redaction pattern {pattern!r} is not a regular expression: {exc}",
                    setting="redaction.extra_patterns",
                ) from exc
            groups = ("secret",) if "secret" in compiled.groupindex else ()
            rules.append(_Rule("custom", compiled, groups))
        self._rules = tuple(rules)
        self._on_redaction = on_redaction

    @classmethod
    def from_settings(
        cls, settings: RedactionSettings | None = None, metrics: Metrics | None = None
    ) -> Redactor:
        """The redactor the settings describe (``TRIAGE_REDACTION_*``), counting into
        ``triage_redactions_total`` when ``metrics`` is given."""
        s = settings or RedactionSettings()
        counted = metrics.redactions if metrics is not None else None
        return cls(
            emails=s.emails,
            extra_patterns=s.extra_patterns,
            on_redaction=(lambda kind, n: counted.labels(kind).inc(n)) if counted else None,
        )

    def redact(self, text: str) -> tuple[str, int]:
        """The text with every secret replaced, and how many were replaced."""
        counts: Counter[str] = Counter()
        lowered = text.lower()
        for rule in self._rules:
            text = _apply(rule, text, lowered, counts)
        if self._on_redaction is not None:
            for kind, n in sorted((+counts).items()):
                self._on_redaction(kind, n)
        return text, sum(counts.values())

    def redact_url(self, url: str) -> tuple[str, int]:
        """A URL still usable after redaction: the password in its userinfo is dropped
        (``https://user@host/``) and secret query values become placeholders."""
        m = _USERINFO.match(url)
        if m is None:
            return self.redact(url)
        # The userinfo apart: ``user@host`` would read as an e-mail address.
        scheme, userinfo, rest = m.group("scheme"), m.group("userinfo"), url[m.end() :]
        text, n = self.redact(scheme + rest)
        user, _, password = userinfo.partition(":")
        clean_user, n_user = self.redact(user)
        if password:
            n += 1
            if self._on_redaction is not None:
                self._on_redaction("url_password", 1)
        if n_user or not clean_user:
            return text, n + n_user  # a token for a user name: no user at all
        return f"{scheme}{clean_user}@{text[len(scheme) :]}", n

    def redact_delivery(
        self, request: DeliveryRequest, route: RouteDecision
    ) -> tuple[DeliveryRequest, RouteDecision]:
        """Copies of a delivery and its route with every string people or programs will read
        redacted: title, labels and annotations (names and values), the RCA's text, evidence,
        links, the series, collectors' errors; each string once. Identifiers the delivery
        records rely on (incident id, kinds, revisions), channels and mentions are kept."""
        seen: dict[tuple[bool, str], str] = {}

        def clean(text: str, key: str | None = None) -> str:
            one_url = key == "url" or _URL_ONLY.fullmatch(text) is not None
            out = seen.get((one_url, text))
            if out is None:
                out = (self.redact_url if one_url else self.redact)(text)[0]
                seen[one_url, text] = out
            return out

        def walk(value: Any, key: str | None) -> Any:
            if isinstance(value, str):
                return value if key in _OWN_FIELDS else clean(value, key)
            if isinstance(value, dict):
                if key in _FREE_KEYS:  # a label's name is the alert's text, a field's is ours
                    return {clean(k): walk(v, None) for k, v in value.items()}
                return {k: walk(v, k) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return type(value)(walk(v, key) for v in value)
            return value

        data = walk(request.model_dump(), None)
        targets = tuple(
            dataclasses.replace(t, team=clean(t.team), reason=clean(t.reason))
            for t in route.targets
        )
        return type(request).model_validate(data), dataclasses.replace(route, targets=targets)

    def redact_evidence(self, evidence: list[Evidence]) -> tuple[list[Evidence], int]:
        """Copies of the evidence with every free-text field redacted; the input is untouched."""
        total = 0

        def clean(text: str) -> str:
            nonlocal total
            out, n = self.redact(text)
            total += n
            return out

        def clean_opt(text: str | None) -> str | None:
            return None if text is None else clean(text)

        result = []
        for ev in evidence:
            items = [
                item.model_copy(
                    update={
                        "summary": clean(item.summary),
                        "detail": clean(item.detail),
                        "change": clean_opt(item.change),
                    },
                    deep=True,
                )
                for item in ev.items
            ]
            result.append(ev.model_copy(update={"items": items, "error": clean_opt(ev.error)}))
        return result, total


_URL_ONLY = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{1,20}://\S+")
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]{1,20}://)(?P<userinfo>[^\s/?#]*)@")
# Fields of a delivery that are ours and that records and routing match on: never rewritten.
_OWN_FIELDS = frozenset({"incident_id", "kind", "role", "status", "schema_version", "prompt_hash"})
# Dicts whose keys come from the alert (label and annotation names) rather than our models.
_FREE_KEYS = frozenset({"labels", "annotations"})


def _apply(rule: _Rule, text: str, lowered: str, counts: Counter[str]) -> str:
    if rule.hints and not any(h in lowered for h in rule.hints):
        return text
    # Placeholders already in the text belong to earlier rules: never re-redact or cut them.
    taken = [m.span() for m in _PLACEHOLDER.finditer(text)]

    def replace(m: re.Match[str]) -> str:
        group = next((g for g in rule.groups if m.group(g) is not None), None)
        start, end = m.span(group) if group else m.span()
        if start == end or (rule.keep is not None and rule.keep(m)):
            return m.group(0)
        inner = [(a, b) for a, b in taken if a < end and start < b]
        if any(a < start or b > end for a, b in inner):
            return m.group(0)  # crosses a placeholder's edge
        if inner and not _ESCAPED_SPACE.sub("", _PLACEHOLDER.sub("", text[start:end])).strip():
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
