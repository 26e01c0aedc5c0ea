"""The stream's subjects, the durable consumer of each stage, and the two delivery lanes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Subjects:
    prefix: str

    @property
    def alerts(self) -> str:
        return f"{self.prefix}.alerts"

    @property
    def investigate(self) -> str:
        return f"{self.prefix}.investigate"

    @property
    def follow_up(self) -> str:
        return f"{self.prefix}.followup"

    @property
    def deliver(self) -> str:
        return f"{self.prefix}.deliver"

    @property
    def deliver_paced(self) -> str:
        return f"{self.prefix}.deliver.paced"

    def dead_letter(self, stage: str) -> str:
        return f"{self.prefix}.deadletter.{stage}"


@dataclass(frozen=True)
class Lane:
    """A delivery lane: every draft and resolve is published to each, and each lane's notifier
    stage delivers it to its own sinks, under its own claim on the incident. Sinks that wait
    for a budget (Slack's per-channel pacing, Retry-After) are in the paced lane, so the
    console, JSONL and webhook never wait on them."""

    name: str  # the key of its claim on an incident (IncidentState.notify_claims)
    durable: str
    subject: str  # attribute of Subjects
    paced: bool
    id_suffix: str  # appended to the Nats-Msg-Id: JetStream de-duplicates per lane

    def msg_id(self, msg_id: str) -> str:
        return msg_id + self.id_suffix


DIRECT = Lane("direct", "deliveries", "deliver", paced=False, id_suffix="")
PACED = Lane("paced", "paced_deliveries", "deliver_paced", paced=True, id_suffix=".paced")
LANES = (DIRECT, PACED)

# durable consumer name -> subject attribute; one consumer per stage, shared by its replicas.
# Filters never overlap (a workqueue stream allows one consumer per message).
# Follow-ups wait minutes on purpose (a delayed nak keeps them ack-pending): on their own
# consumer they neither block fresh investigations at max_ack_pending nor inflate the lag that
# scales the workers.
CONSUMERS = {
    "incidents": "alerts",
    "investigations": "investigate",
    "followups": "follow_up",
    **{lane.durable: lane.subject for lane in LANES},
}
MAX_ACK_PENDING = {"followups": 100_000}


def longest_msg_id(msg_id: str) -> str:
    """The longest Nats-Msg-Id a delivery is published under: what sizes its room."""
    return max((lane.msg_id(msg_id) for lane in LANES), key=len)
