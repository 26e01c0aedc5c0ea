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
from typing import Any

from collectors.contracts import Evidence
from triage.analyse.redaction_rules import EMAIL, RULES, Rule, apply_rule
from triage.deliver.routing import RouteDecision
from triage.errors import ConfigError
from triage.models import DeliveryRequest
from triage.settings import RedactionSettings
from triage.telemetry import Metrics

OnRedaction = Callable[[str, int], None]


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
        rules = list(RULES)
        if emails:
            rules.append(EMAIL)
        for pattern in extra_patterns or []:
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ConfigError(
                    f"redaction pattern {pattern!r} is not a regular expression: {exc}",
                    setting="redaction.extra_patterns",
                ) from exc
            groups = ("secret",) if "secret" in compiled.groupindex else ()
            rules.append(Rule("custom", compiled, groups))
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
            text = apply_rule(rule, text, lowered, counts)
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
