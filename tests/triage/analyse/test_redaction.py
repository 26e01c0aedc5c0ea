"""Redaction: no secret in the corpus survives, ordinary log content comes through untouched."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.contracts import Evidence, EvidenceItem
from tests.support.secrets_corpus import BENIGN, Case, cases
from triage.analyse.redaction import Redactor
from triage.errors import ConfigError
from triage.settings import Settings
from triage.telemetry import Metrics

CASES = cases()
KINDS = re.compile(r"\[REDACTED:([a-z0-9_]+)\]")


def test_the_corpus_covers_at_least_50_formats():
    assert len({c.name for c in CASES}) == len(CASES) >= 50
    assert len({k for c in CASES for k in c.kinds}) >= 50


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_no_secret_survives(case: Case):
    out, n = Redactor().redact(case.text)
    for secret in case.secrets:
        assert secret not in out
    assert n == len(case.kinds)
    assert Counter(KINDS.findall(out)) == Counter(case.kinds)
    for context in case.keep:
        assert context in out, f"lost {context!r}: {out!r}"


def test_surrounding_text_is_kept_and_the_placeholder_names_the_kind():
    r = Redactor()
    assert r.redact("password=hunter2 user=bob") == ("password=[REDACTED:password] user=bob", 1)
    assert r.redact("postgres://app:s3cret@db:5432/x") == (
        "postgres://app:[REDACTED:url_password]@db:5432/x",
        1,
    )


@pytest.mark.parametrize("text", BENIGN)
def test_ordinary_log_content_comes_through_unchanged(text: str):
    assert Redactor().redact(text) == (text, 0)


def test_secrets_in_one_long_dump_are_all_found():
    dump = "\n".join(c.text for c in CASES)
    out, n = Redactor().redact(dump)
    assert n == sum(len(c.kinds) for c in CASES)
    for case in CASES:
        for secret in case.secrets:
            assert secret not in out


@pytest.mark.parametrize("case", CASES[::7], ids=[c.name for c in CASES[::7]])
def test_redacting_twice_changes_nothing(case: Case):
    r = Redactor()
    once, _ = r.redact(case.text)
    assert r.redact(once) == (once, 0)


@settings(max_examples=300, deadline=None)
@given(
    case=st.sampled_from(CASES),
    before=st.text(max_size=40),
    after=st.text(max_size=40),
)
def test_secrets_do_not_survive_whatever_surrounds_them(case: Case, before: str, after: str):
    out, _ = Redactor().redact(f"{before}\n{case.text}\n{after}")
    for secret in case.secrets:
        assert secret not in out


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_redacted_without_error_and_stably(text: str):
    r = Redactor()
    once, n = r.redact(text)
    assert n >= 0
    assert r.redact(once) == (once, 0)


def test_emails_can_be_kept():
    text = "bounce from jane@example.com; password=hunter2"
    assert Redactor(emails=False).redact(text) == (
        "bounce from jane@example.com; password=[REDACTED:password]",
        1,
    )
    assert "jane@example.com" not in Redactor().redact(text)[0]


def test_extra_patterns_redact_the_deployments_own_secrets():
    r = Redactor(extra_patterns=[r"ACME-\d{6}", r"customer=(?P<secret>\w+)"])
    out, n = r.redact("ticket ACME-123456 for customer=bigcorp in eu-west-1")
    assert out == "ticket [REDACTED:custom] for customer=[REDACTED:custom] in eu-west-1"
    assert n == 2


def test_a_broken_extra_pattern_is_a_configuration_error():
    with pytest.raises(ConfigError) as err:
        Redactor(extra_patterns=["(unclosed"])
    assert err.value.setting == "redaction.extra_patterns"


def test_settings_from_the_environment_configure_the_redactor(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TRIAGE_REDACTION_EMAILS", "false")
    monkeypatch.setenv("TRIAGE_REDACTION_EXTRA_PATTERNS", '["ACME-[0-9]{6}"]')
    s = Settings().redaction
    r = Redactor(emails=s.emails, extra_patterns=s.extra_patterns)
    assert r.redact("ACME-000042 mailed ops@example.com") == (
        "[REDACTED:custom] mailed ops@example.com",
        1,
    )


def _evidence() -> list[Evidence]:
    return [
        Evidence(
            collector="kubernetes",
            status="ok",
            items=[
                EvidenceItem(
                    id="rollout-api-rev7",
                    kind="rollout",
                    summary="Deployment shop/api rolled out revision 7",
                    detail="api: env DB_PASSWORD=hunter22\napi: image api:v1 -> api:v2",
                    subject="api",
                    change="deployment/api revision 7 (DATABASE_URL=postgres://a:pw1234@db/x)",
                    points=[(1.0, 2.0)],
                ),
                EvidenceItem(id="pod-api", kind="pod_state", summary="2 pods in CrashLoopBackOff"),
            ],
        ),
        Evidence(
            collector="logs",
            status="error",
            error="loki: 401 for Authorization: Bearer abcdef0123456789abcdef",
        ),
    ]


def test_evidence_is_copied_with_every_text_field_redacted():
    evidence = _evidence()
    before = [e.model_dump() for e in evidence]
    clean, n = Redactor().redact_evidence(evidence)
    assert [e.model_dump() for e in evidence] == before  # the input is untouched
    assert n == 3
    item = clean[0].items[0]
    assert item.detail == ("api: env DB_PASSWORD=[REDACTED:password]\napi: image api:v1 -> api:v2")
    assert item.change == (
        "deployment/api revision 7 (DATABASE_URL=postgres://a:[REDACTED:url_password]@db/x)"
    )
    assert clean[1].error == "loki: 401 for Authorization: Bearer [REDACTED:bearer_token]"
    assert (item.id, item.kind, item.subject, item.points) == (
        "rollout-api-rev7",
        "rollout",
        "api",
        [(1.0, 2.0)],
    )
    assert clean[0].items[1] == evidence[0].items[1]
    assert (clean[1].collector, clean[1].status) == ("logs", "error")


def test_redactions_are_counted_in_the_metric_by_kind():
    metrics = Metrics()
    r = Redactor(on_redaction=lambda kind, n: metrics.redactions.labels(kind).inc(n))
    r.redact_evidence(_evidence())
    r.redact("token=abc123def and token=xyz789uvw")

    def sample(kind: str) -> float | None:
        return metrics.registry.get_sample_value("triage_redactions_total", {"kind": kind})

    assert sample("password") == 1
    assert sample("url_password") == 1
    assert sample("bearer_token") == 1
    assert sample("token") == 2
    assert sample("email") is None
