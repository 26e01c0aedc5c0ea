"""kill -9 of nats-server under load, twice, with ingest, worker and notifier as separate
processes: 0 lost drafts, none twice.

tests/triage/test_faults.py::test_broker_outage_during_ingest_loses_nothing covers a broker that
is stopped cleanly (SIGTERM) before one alert arrives, with every stage in the test's process.
Here the broker dies without warning (SIGKILL: no flush, no goodbye to its clients) while
webhooks arrive from several senders and, the second time, while incidents are being
investigated and delivered. Senders behave like Alertmanager: a 5xx or a connection error is
retried until the webhook is taken. The stages must reconnect on their own and finish every
incident once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from triage_lab.fakes.nats import NatsServer

from tests.reliability.harness import (
    WEBHOOK_PATH,
    AlertmanagerLike,
    StageProcess,
    dead_letters,
    drafts_by_incident,
    duplicate_deliveries,
    record,
    settled,
    start_all,
    stop_all,
    subject_count,
    wait_until,
)
from tests.support.app import TOKEN
from tests.support.payloads import alert, webhook

pytestmark = [pytest.mark.slow, pytest.mark.reliability, pytest.mark.timeout(420)]

INCIDENTS = 40  # sent by SENDERS while the broker is killed
BURST = 20  # then sent at once, and the broker killed as the last is taken
SENDERS = 4


def test_kill_9_of_nats_under_load_loses_no_draft(tmp_path: Path):
    drafts_path = tmp_path / "drafts.jsonl"
    with NatsServer(workdir=tmp_path / "nats") as server:
        common = {"TRIAGE_NATS_URL": server.url}
        ingest = StageProcess("ingest", {**common, "TRIAGE_INGEST_BEARER_TOKEN": TOKEN}, tmp_path)
        worker = StageProcess("worker", common, tmp_path)
        notify = StageProcess(
            "notify", {**common, "TRIAGE_DELIVERY_JSONL_PATH": str(drafts_path)}, tmp_path
        )
        stages = [ingest, worker, notify]
        senders = [AlertmanagerLike(ingest.base_url + WEBHOOK_PATH) for _ in range(SENDERS)]
        accepted: list[str] = []
        failures: list[BaseException] = []
        lock = threading.Lock()

        def send(n: int, first: int = 0, last: int = INCIDENTS, step: int = SENDERS) -> None:
            try:
                with httpx.Client() as client:
                    for i in range(first + n, last, step):
                        body = webhook(
                            [alert(f"Broker{i}", service=f"svc-{i}")],
                            group_key=f'{{}}:{{alertname="Broker{i}", namespace="shop"}}',
                        )
                        resp = senders[n].send(client, body)
                        assert resp.status_code == 200, resp.text
                        with lock:
                            accepted.append(resp.json()["incident_id"])
                        if step > 1:
                            time.sleep(0.05)  # a steady stream, not one burst
            except BaseException as exc:
                failures.append(exc)

        def refused() -> int:
            return sum(n for s in senders for k, n in s.attempts.items() if k != "200")

        def alive() -> None:
            for stage in stages:
                assert stage.alive, f"{stage.name} died:\n{stage.log_tail()}"

        outages: list[float] = []

        def kill_and_restart(until_noticed: int = 0, at_least_s: float = 0) -> None:
            """SIGKILL the broker; start it again (same port and store) once ``until_noticed``
            webhooks were refused, or else the stages report not ready, and ``at_least_s`` on."""
            server.stop(kill=True)
            down = time.monotonic()
            if until_noticed:
                wait_until(lambda: refused() >= until_noticed, 30, "webhooks refused (503)")
            else:
                wait_until(lambda: not any(s.ready() for s in stages), 30, "stages not ready")
            # Down long enough that every client's reconnect loop fails a few times.
            time.sleep(max(0.0, at_least_s - (time.monotonic() - down)))
            server.start()
            outages.append(time.monotonic() - down)

        try:
            start_all(stages)
            started = time.monotonic()
            threads = [threading.Thread(target=send, args=(n,)) for n in range(SENDERS)]
            for t in threads:
                t.start()
            # First kill: while webhooks arrive (Alertmanager is told 503 and retries).
            wait_until(lambda: len(accepted) >= 10, 60, "first webhooks accepted")
            kill_and_restart(until_noticed=3 * SENDERS)
            for t in threads:
                t.join(150)
            assert not failures, failures
            assert len(set(accepted)) == INCIDENTS
            wait_until(lambda: all(s.ready() for s in stages), 60, "stages ready again")
            # Second kill: as a burst of new incidents is being investigated and delivered.
            send(0, INCIDENTS, INCIDENTS + BURST, 1)
            assert not failures, failures
            in_flight = len(set(accepted) - set(drafts_by_incident(drafts_path)))
            kill_and_restart(at_least_s=2)
            wait_until(
                lambda: set(accepted) <= set(drafts_by_incident(drafts_path)),
                150,
                "a draft for every incident",
                every=0.5,
            )
            wait_until(lambda: settled(server.url), 60, "consumers settled", every=0.5)
            elapsed = time.monotonic() - started

            drafts = drafts_by_incident(drafts_path)
            letters = dead_letters(server.url)
            lost = set(accepted) - set(drafts)
            twice = {inc: n for inc, n in drafts.items() if n > 1}
            assert lost == set()
            assert twice == {}
            assert duplicate_deliveries(drafts_path) == {}
            assert letters == []
            assert refused() >= 3 * SENDERS
            # Retries of webhooks whose 503 came after JetStream stored them were dropped.
            on_stream = subject_count(server.url, "triage.alerts")
            assert on_stream == INCIDENTS + BURST
            alive()
        except BaseException:
            for stage in stages:
                print(f"--- {stage.name} log tail ---\n{stage.log_tail()}")
            raise
        finally:
            stop_all(stages)

    attempts: Counter[str] = Counter()
    for s in senders:
        attempts.update(s.attempts)
    record(
        "broker_kill",
        {
            "incidents": INCIDENTS + BURST,
            "senders": SENDERS,
            "nats_kills": len(outages),
            "outage_seconds": [round(o, 1) for o in outages],
            "incidents_without_draft_at_second_kill": in_flight,
            "stages_alive_throughout": True,
            "webhook_attempts": dict(sorted(attempts.items())),
            "webhooks_accepted": len(accepted),
            "stream_messages_triage_alerts": on_stream,
            "drafts": sum(drafts.values()),
            "lost": len(lost),
            "duplicates": sum(n - 1 for n in twice.values()),
            "dead_letters": len(letters),
            "seconds_to_all_drafts_and_settled": round(elapsed, 1),
        },
    )
