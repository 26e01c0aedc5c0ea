"""Pod logs mined for new error templates; addresses in them resolved to workloads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from triage_lab.scenarios import KubeObjects, LogStream

from collectors.contracts import TimeWindow
from collectors.pod_logs import LogsCollector
from collectors.sources import FileKubeSource
from tests.support.incidents import firing

ONSET = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WINDOW = TimeWindow(
    start=ONSET - timedelta(minutes=30), onset=ONSET, end=ONSET + timedelta(minutes=10)
)


def pod(name: str, app: str, ns: str = "shop") -> dict:
    return {
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
        "spec": {"containers": [{"name": app}]},
        "status": {},
    }


def line(at: datetime, text: str) -> str:
    return f"{at.isoformat().replace('+00:00', 'Z')} {text}"


async def test_new_error_template_names_the_workload_behind_the_address():
    objects = KubeObjects(
        pods=[pod("web-1", "web"), pod("coredns-1", "coredns", "kube-system")],
        services=[
            {
                "metadata": {"name": "kube-dns", "namespace": "kube-system"},
                "spec": {"clusterIP": "10.96.0.10", "selector": {"app": "coredns"}},
            }
        ],
    )
    healthy = [line(ONSET - timedelta(minutes=m), f"GET /item/{m} 200") for m in range(20, 1, -1)]
    broken = [
        line(
            ONSET + timedelta(seconds=10 * i),
            f"ERROR lookup cart.shop.svc on 10.96.0.10:53: no such host (req {i})",
        )
        for i in range(8)
    ]
    logs = [LogStream(namespace="shop", pod="web-1", container="web", lines=healthy + broken)]
    labels = {"alertname": "Errors", "namespace": "shop", "service": "web"}
    incident = firing(labels, ONSET, incident_id="i", fingerprint="f")
    evidence = await LogsCollector(FileKubeSource(objects, logs)).collect(incident, WINDOW)
    (found,) = [i for i in evidence.items if "no such host" in i.summary]
    assert found.subject == "web" and found.fault_hint == "dns_failure"
    assert "8x in the incident window (baseline 0x)" in found.summary
    assert "addresses of: coredns" in found.detail
    assert "name resolution is served by coredns" in found.detail


async def test_resolver_errors_without_an_address_still_name_the_cluster_dns():
    objects = KubeObjects(
        pods=[pod("api-1", "api"), pod("dns-1", "coredns", "kube-system")],
        services=[
            {
                "metadata": {"name": "kube-dns", "namespace": "kube-system"},
                "spec": {"clusterIP": "172.20.0.10", "selector": {"app": "coredns"}},
            }
        ],
    )
    healthy = [line(ONSET - timedelta(minutes=m), f"GET /item/{m} 200") for m in range(20, 1, -1)]
    messages = [
        "httpx.ConnectError: [Errno -3] Temporary failure in name resolution",
        "java.net.UnknownHostException: payments.shop.svc.cluster.local",
        "Error: getaddrinfo ENOTFOUND payments.shop.svc.cluster.local",
    ]
    logs = [
        LogStream(
            namespace="shop",
            pod="api-1",
            container="api",
            lines=healthy
            + [line(ONSET + timedelta(seconds=5 * i), messages[i % 3]) for i in range(12)],
        )
    ]
    labels = {"alertname": "Errors", "namespace": "shop", "service": "api"}
    incident = firing(labels, ONSET, incident_id="i", fingerprint="f")
    evidence = await LogsCollector(FileKubeSource(objects, logs)).collect(incident, WINDOW)
    found = [i for i in evidence.items if i.subject == "api"]
    assert len(found) == 3
    assert all(i.fault_hint == "dns_failure" for i in found)
    assert all("name resolution is served by coredns" in i.detail for i in found)


class CountingSource(FileKubeSource):
    """The files' Kubernetes API, counting whose logs were read."""

    def __init__(self, objects: KubeObjects, logs: list[LogStream]) -> None:
        super().__init__(objects, logs)
        self.read: list[str] = []

    async def logs(self, namespace: str, pod: str, *args: Any, **kwargs: Any) -> str:
        self.read.append(pod)
        return await super().logs(namespace, pod, *args, **kwargs)


async def test_a_namespace_of_many_workloads_reads_the_alerting_and_troubled_ones_first():
    # 40 workloads in one namespace: logs are read from a bounded number of them, and the one
    # the alert names and the one whose pod restarts are among them though they sort last.
    crashing = pod("yak-1", "yak")
    crashing["status"] = {"containerStatuses": [{"name": "yak", "restartCount": 4}]}
    pods = [pod(f"svc{n:02d}-{r}", f"svc{n:02d}") for n in range(38) for r in range(2)]
    objects = KubeObjects(pods=[*pods, crashing, pod("zeta-1", "zeta")])
    broken = [
        line(ONSET + timedelta(seconds=10 * i), f"ERROR dial tcp 10.0.0.{i}:5432: refused")
        for i in range(8)
    ]
    logs = [LogStream(namespace="shop", pod="zeta-1", container="zeta", lines=broken)]
    source = CountingSource(objects, logs)
    labels = {"alertname": "Errors", "namespace": "shop", "service": "zeta"}
    incident = firing(labels, ONSET, incident_id="i", fingerprint="f")
    evidence = await LogsCollector(source, max_services_per_namespace=12).collect(incident, WINDOW)
    assert [i.subject for i in evidence.items] == ["zeta"]
    assert {"zeta-1", "yak-1"} <= set(source.read)
    assert source.read.count("yak-1") == 2  # its current and its previous container
    services = {p.rsplit("-", 1)[0] for p in source.read}
    assert len(services) == 12
