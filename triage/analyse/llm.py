"""LLM analysis through the in-cluster OpenAI-compatible gateway (LiteLLM, vLLM).

Evidence is redacted, ranked, packed by rank into the prompt budget and sent once, as
delimited data, with a strict JSON schema. An answer that is not schema-valid or cites ids that
were not sent gets one repair call; transient gateway errors are retried under one deadline,
then the fallback models are asked; whatever fails ends in the heuristic draft, labelled.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, cast

import openai
import structlog
from openai import AsyncOpenAI
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_exponential, wait_random

from collectors.contracts import Evidence
from triage.analyse.backpressure import AdaptiveLimiter, CircuitBreaker
from triage.analyse.budget import estimate_tokens
from triage.analyse.gateway import gateway_error, price
from triage.analyse.heuristic import HeuristicAnalyzer
from triage.analyse.llm_answer import (
    AnswerProblem,
    LLMAnswer,
    check_answer,
    read_only,
    response_format,
)
from triage.analyse.llm_messages import Prompt, PromptBuilder, estimate
from triage.analyse.prompts import Prompts, load_prompts
from triage.analyse.redaction import Redactor
from triage.errors import GatewayError, TriageError
from triage.investigate.ranking import rank
from triage.models import RCA, IncidentState, LLMUsage, RootCause, Suspect, utcnow
from triage.settings import LLMSettings, Settings
from triage.telemetry import Metrics

log = structlog.get_logger(__name__)

UNAVAILABLE_LABEL = "LLM unavailable — deterministic draft"
INVALID_LABEL = "LLM answer unusable — deterministic draft"
_CALL_GRACE_S = 0.5  # hard stop past the client's own timeout, for a gateway that drips bytes


def llm_label(model: str) -> str:
    return f"LLM draft ({model}) from the cited evidence, for review"


class Unavailable(TriageError):
    """No model answered within the deadline (or the circuit is open)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Tally:
    """Tokens and cost of one RCA, summed over its calls."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    calls: int = 0
    models: list[str] = field(default_factory=list)

    def usage(self) -> LLMUsage:
        return LLMUsage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            cost=round(self.cost, 6),
            calls=self.calls,
        )


def owner_team(incident: IncidentState) -> str | None:
    for labels in [incident.common_labels, *(a.labels for a in incident.alerts.values())]:
        if labels.get("team"):
            return labels["team"]
    return None


class LLMAnalyzer:
    name = "llm"

    def __init__(
        self,
        client: AsyncOpenAI,
        settings: LLMSettings,
        metrics: Metrics,
        *,
        redactor: Redactor | None = None,
        budget_tokens: int = 4000,
        call_graph: list[tuple[str, str]] | None = None,
        prompts: Prompts | None = None,
    ) -> None:
        self._client = client
        self._settings = settings
        self._metrics = metrics
        self._redactor = redactor or Redactor()
        self._budget = budget_tokens
        self._call_graph = call_graph
        self._heuristic = HeuristicAnalyzer(call_graph)
        self.prompts = prompts or load_prompts(settings.prompt_version, settings.prompt_dir)
        self.limiter = AdaptiveLimiter(settings.min_concurrency, settings.max_concurrency, metrics)
        self.breaker = CircuitBreaker(
            settings.circuit_failures,
            settings.circuit_open_s,
            lambda is_open: metrics.llm_circuit_open.set(1 if is_open else 0),
        )
        self._models = [settings.model, *(m for m in settings.fallback_models if m)]
        self._format = response_format()
        self._builder = PromptBuilder(self.prompts, self._redactor, budget_tokens, self._format)
        log.info(
            "llm_analyzer_ready",
            models=self._models,
            prompt_version=self.prompts.version,
            prompt_hash=self.prompts.hash,
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def analyze(self, incident: IncidentState, evidence: list[Evidence]) -> RCA:
        deadline = time.monotonic() + self._settings.deadline_s
        team = owner_team(incident)
        tally = Tally()
        if not any(e.items for e in evidence):
            # Nothing to cite: the model could only say "unknown", and the heuristic says so.
            self._account(tally, team, "no_evidence")
            return await self._heuristic.analyze(incident, evidence)
        if not self.breaker.would_allow():
            return await self._fallback(incident, evidence, "circuit_open", tally, team)
        clean, redacted = self._redactor.redact_evidence(evidence)
        suspects = rank(incident, clean, self._call_graph)
        prompt = self._builder.build(incident, clean, suspects)
        log.info(
            "llm_prompt",
            prompt_version=self.prompts.version,
            prompt_hash=self.prompts.hash,
            tokens=prompt.tokens,
            items=len(prompt.ids),
            dropped=prompt.dropped,
            redacted=redacted,
        )
        try:
            # Backstop only: every wait below is already bounded by the deadline.
            async with asyncio.timeout(self._settings.deadline_s + 2 * _CALL_GRACE_S):
                answer, model, repaired = await self._ask(prompt, tally, deadline)
        except AnswerProblem as problem:
            log.warning("llm_answer_rejected", problem=str(problem))
            return await self._fallback(incident, evidence, "invalid", tally, team)
        except (Unavailable, TimeoutError) as exc:
            log.warning("llm_unavailable", reason=str(exc) or "deadline")
            outcome = "circuit_open" if self.breaker.is_open else "unavailable"
            return await self._fallback(incident, evidence, outcome, tally, team)
        self._account(tally, team, "repaired" if repaired else "llm")
        return self._rca(incident, answer, model, suspects, tally, team)

    async def _ask(
        self, prompt: Prompt, tally: Tally, deadline: float
    ) -> tuple[LLMAnswer, str, bool]:
        content, model = await self._call_any(self._models, prompt.messages, tally, deadline)
        try:
            return check_answer(content, prompt.ids), model, False
        except AnswerProblem as problem:
            log.info("llm_repair", model=model, problem=str(problem))
            repair = [
                *prompt.messages,
                {"role": "assistant", "content": content or ""},
                {
                    "role": "user",
                    "content": f"{problem} Answer again with the corrected JSON object only.",
                },
            ]
            rest = self._models[self._models.index(model) :]
            content, model = await self._call_any(rest, repair, tally, deadline)
            return check_answer(content, prompt.ids), model, True

    async def _call_any(
        self, models: list[str], messages: list[dict[str, str]], tally: Tally, deadline: float
    ) -> tuple[str, str]:
        """The first model that answers, each retried on transient errors."""
        last: GatewayError | None = None
        for model in models:
            if time.monotonic() >= deadline:
                break
            retrying = AsyncRetrying(
                retry=retry_if_exception(lambda e: isinstance(e, GatewayError) and e.transient),
                stop=stop_after_attempt(self._settings.max_retries + 1) | _past(deadline),
                wait=_wait,
                reraise=True,
                before_sleep=_log_retry,
            )
            try:
                content: str = await retrying(self._call_once, model, messages, tally, deadline)
                return content, model
            except GatewayError as exc:
                last = exc
                log.warning("llm_model_failed", model=model, status=exc.status, error=str(exc))
                if self.breaker.is_open:
                    break
        raise Unavailable(str(last) if last else "deadline reached before any call")

    async def _call_once(
        self, model: str, messages: list[dict[str, str]], tally: Tally, deadline: float
    ) -> str:
        if not self.breaker.allow():
            raise GatewayError("circuit breaker open", model=model)
        ok: bool | None = None  # what this call says about the gateway, for the breaker
        try:
            try:
                async with asyncio.timeout(max(deadline - time.monotonic(), 0)):
                    slot = await self.limiter.acquire()
            except TimeoutError as exc:
                raise GatewayError("deadline reached while queued", model=model) from exc
            try:
                left = deadline - time.monotonic()
                typical = self.limiter.typical_latency
                if typical is not None and left < typical:
                    # It would most likely time out: leave the backend to calls that can finish.
                    self._metrics.llm_calls.labels(model, "no_time").inc()
                    raise GatewayError(
                        f"{model}: {left:.1f}s left, calls take {typical:.1f}s", model=model
                    )
                budget = max(min(self._settings.timeout_s, left), 0.05)
                started = time.monotonic()
                try:
                    async with asyncio.timeout(budget + _CALL_GRACE_S):
                        response = await self._client.chat.completions.create(
                            model=model,
                            messages=cast(Any, messages),  # plain dicts, as sent
                            response_format=cast(Any, self._format),
                            temperature=0,
                            max_tokens=self._settings.max_tokens,
                            timeout=budget,
                        )
                except (openai.OpenAIError, TimeoutError) as exc:
                    err, signal = gateway_error(exc, model)
                    self.limiter.record(slot, signal)
                    self._metrics.llm_calls.labels(model, signal).inc()
                    # A 429 or a 4xx comes from a gateway that is up.
                    ok = False if err.transient and not err.rate_limited else None
                    raise err from exc
                latency = time.monotonic() - started
                self.limiter.record(slot, "ok", latency)
                ok = True
            finally:
                self.limiter.release(slot)
        finally:
            self.breaker.record(ok)
        self._metrics.llm_calls.labels(model, "ok").inc()
        self._metrics.llm_call_duration.labels(model).observe(latency)
        content = response.choices[0].message.content if response.choices else None
        usage = response.usage  # some gateways leave it out: then our own estimate
        prompt_tokens = (
            usage.prompt_tokens if usage else estimate(messages) + self._builder.schema_tokens
        )
        completion_tokens = usage.completion_tokens if usage else estimate_tokens(content or "")
        tally.calls += 1
        tally.prompt_tokens += prompt_tokens
        tally.completion_tokens += completion_tokens
        tally.cost += (
            prompt_tokens * price(self._settings.price_per_1k_prompt, model)
            + completion_tokens * price(self._settings.price_per_1k_completion, model)
        ) / 1000
        tally.models.append(model)
        return content or ""

    def _rca(
        self,
        incident: IncidentState,
        answer: LLMAnswer,
        model: str,
        suspects: list[Suspect],
        tally: Tally,
        team: str | None,
    ) -> RCA:
        steps, refused = read_only(answer.next_steps)
        if refused:
            log.warning("llm_steps_refused", steps=refused)
        cause = answer.root_cause
        said_team = answer.owner_team if answer.owner_team.lower() != "unknown" else None
        return RCA(
            incident_id=incident.incident_id,
            revision=incident.requested_revision,
            summary=answer.summary,
            root_cause=RootCause(
                component=cause.component,
                kind=cause.kind,
                change=cause.change,
                description=cause.description,
            ),
            confidence=answer.confidence,
            impact=answer.impact,
            evidence_ids=list(dict.fromkeys(answer.evidence_ids)),
            next_steps=steps,
            open_questions=answer.open_questions,
            analyzer=self.name,
            label=llm_label(model),
            created_at=utcnow(),
            suspects=_lead_with(suspects, answer),
            model=model,
            prompt_version=self.prompts.version,
            prompt_hash=self.prompts.hash,
            usage=tally.usage(),
            owner_team=team or said_team,
        )

    async def _fallback(
        self,
        incident: IncidentState,
        evidence: list[Evidence],
        outcome: str,
        tally: Tally,
        team: str | None,
    ) -> RCA:
        self._account(tally, team, outcome)
        draft = await self._heuristic.analyze(incident, evidence)
        return draft.model_copy(
            update={
                "label": INVALID_LABEL if outcome == "invalid" else UNAVAILABLE_LABEL,
                "prompt_version": self.prompts.version,
                "prompt_hash": self.prompts.hash,
                "usage": tally.usage(),
                "owner_team": team,
            }
        )

    def _account(self, tally: Tally, team: str | None, outcome: str) -> None:
        m = self._metrics
        m.llm_analyses.labels(outcome).inc()
        who = team or "unknown"
        model = tally.models[-1] if tally.models else "none"
        if tally.calls:
            m.llm_tokens.labels(model, who, "prompt").inc(tally.prompt_tokens)
            m.llm_tokens.labels(model, who, "completion").inc(tally.completion_tokens)
            m.llm_cost.labels(model, who).inc(tally.cost)
        log.info(
            "llm_usage",
            outcome=outcome,
            model=model,
            team=who,
            calls=tally.calls,
            prompt_tokens=tally.prompt_tokens,
            completion_tokens=tally.completion_tokens,
            cost=round(tally.cost, 6),
        )


def _lead_with(suspects: list[Suspect], answer: LLMAnswer) -> list[Suspect]:
    """The ranking with the LLM's pick first: it is this draft's best candidate."""
    pick = answer.root_cause.component
    rest = [s for s in suspects if s.component != pick]
    lead = next((s for s in suspects if s.component == pick), None)
    if lead is None:
        if pick.lower() == "unknown":
            return suspects
        lead = Suspect(
            component=pick,
            score=answer.confidence,
            kind=answer.root_cause.kind,
            change=answer.root_cause.change,
            evidence_ids=answer.evidence_ids[:5],
        )
    return [lead, *rest]


_backoff = wait_exponential(multiplier=0.25, max=4.0) + wait_random(0, 0.25)


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, GatewayError) and exc.retry_after is not None:
        return exc.retry_after
    return float(_backoff(state))


class _past(stop_base):
    """Stop when the next attempt would start after the deadline."""

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return time.monotonic() + retry_state.upcoming_sleep >= self._deadline


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.info(
        "llm_retry",
        attempt=state.attempt_number,
        wait_s=round(state.upcoming_sleep, 3),
        error=str(exc),
    )


def llm_analyzer(
    settings: Settings,
    client: AsyncOpenAI,
    metrics: Metrics,
    *,
    call_graph: list[tuple[str, str]] | None = None,
) -> LLMAnalyzer:
    """The analyzer the settings describe, on a client the caller owns (app lifespan, eval)."""
    redactor = Redactor(
        emails=settings.redaction.emails,
        extra_patterns=settings.redaction.extra_patterns,
        on_redaction=lambda kind, n: metrics.redactions.labels(kind).inc(n),
    )
    return LLMAnalyzer(
        client,
        settings.llm,
        metrics,
        redactor=redactor,
        budget_tokens=settings.investigation.prompt_budget_tokens,
        call_graph=call_graph,
    )
