"""Redaction's building blocks: vendor token formats, secret key names, and harmless values."""

from __future__ import annotations

import re

BOUNDARY_BEFORE = r"(?<![A-Za-z0-9_])"
BOUNDARY_AFTER = r"(?![A-Za-z0-9_])"


# --- vendor formats: a fixed prefix or shape is enough, no context needed -----------------------
VENDOR: list[tuple[str, str]] = [
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
SECRET_WORDS = (
    r"password|passwd|passphrase|secret|token|credentials?|api[_-]?key|apikey"
    r"|private[_-]?key(?:[_-]?id)?"
    r"|(?:access|secret|account|master|encryption|signing|shared[_-]?access|app|application"
    r"|license|auth|subscription|client)[_-]?key"
)
# Short words only count as a whole word or after a separator (``DB_PWD``, not ``OLDPWD``).
SHORT_WORDS = r"pwd|pass|auth"
KEY = (
    rf"(?<![A-Za-z0-9_.-])(?P<key>[A-Za-z0-9_.-]*?(?:{SECRET_WORDS})"
    rf"|(?:[A-Za-z0-9_.-]*[_.-])?(?:{SHORT_WORDS}))(?![A-Za-z0-9_.-])"
)
KEY_HINTS = ("pass", "pwd", "secret", "token", "key", "auth", "credential")
Q = r"(?:\\?[\"'])?"  # optional quote around a key, also escaped JSON inside JSON
SEP = r"[ \t]*(?P<sep>:=|=>|[:=])[ \t]*"
# A quoted value runs to its closing quote (spaces and all); a bare one to a delimiter.
VALUE = (
    r"(?:\"(?P<v1>(?:[^\"\\\n]|\\.)*)\""
    r"|\\\"(?P<v2>(?:(?!\\\").)*)\\\""
    r"|'(?P<v3>[^'\n]*)'"
    r"|(?P<v4>[^\s\"',;&<>{}()\[\]\\]+))"
)
VALUE_GROUPS = ("v1", "v2", "v3", "v4")

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
    for g in VALUE_GROUPS:
        if g in m.re.groupindex and m.group(g) is not None:
            return m.group(g), g == "v4"
    return "", False


def keep_value(m: re.Match[str]) -> bool:
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


def keep_first_word(word: str) -> bool:
    return word.endswith(":") or word.rstrip(";,").lower() in _HARMLESS


def key_kind(m: re.Match[str]) -> str:
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
