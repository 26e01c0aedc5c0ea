"""``triage doctor``'s Kubernetes check: the API server, and every RBAC verb triage uses."""

from __future__ import annotations

import asyncio

import urllib3.exceptions

from collectors.sources import KUBE_PATHS, api_group, collector_rbac
from triage.cli.doctor_common import KUBE_ENV, Check, describe, safe_url
from triage.deliver.ownership import WORKLOAD_LABELS, api_client
from triage.errors import TriageError
from triage.settings import Settings

Need = tuple[str, str, str]  # RBAC (API group, resource[/subresource], verb)


def ownership_rbac() -> frozenset[Need]:
    """What ownership lookups read (triage/deliver/ownership.py): the namespace and the workload."""
    kinds = {kind + "s" for _, kind, _ in WORKLOAD_LABELS}
    gets = {(api_group(KUBE_PATHS[kind][0]), kind, "get") for kind in kinds}
    return frozenset(gets | {("", "namespaces", "get")})


def rbac_needs() -> frozenset[Need]:
    """Every verb triage uses: the workers' collectors and the notifier's ownership lookups."""
    return collector_rbac() | ownership_rbac()


def _kube_sync(settings: Settings, needs: frozenset[Need]) -> Check:
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    cfg = settings.kubernetes
    api = api_client(
        kubeconfig=str(cfg.kubeconfig) if cfg.kubeconfig else None,
        context=cfg.context,
        in_cluster=cfg.in_cluster,
    )
    if api is None:  # unreachable: the caller checked that something is configured
        return Check("off", "kubernetes", f"set {KUBE_ENV}")
    host = safe_url(str(api.configuration.host))
    timeout = cfg.timeout_s
    try:
        try:
            version = k8s.VersionApi(api).get_code(_request_timeout=timeout).git_version
        except ApiException as exc:
            return Check("fail", "kubernetes", f"{host}: /version: {exc.status} {exc.reason}")
        auth = k8s.AuthorizationV1Api(api)
        denied = []
        for group, resource, verb in sorted(needs):
            name, _, sub = resource.partition("/")
            review = k8s.V1SelfSubjectAccessReview(
                api_version="authorization.k8s.io/v1",
                kind="SelfSubjectAccessReview",
                spec=k8s.V1SelfSubjectAccessReviewSpec(
                    resource_attributes=k8s.V1ResourceAttributes(
                        group=group, resource=name, subresource=sub or None, verb=verb
                    )
                ),
            )
            try:
                answer = auth.create_self_subject_access_review(review, _request_timeout=timeout)
            except ApiException as exc:
                return Check(
                    "fail",
                    "kubernetes",
                    f"{host}: SelfSubjectAccessReview: {exc.status} {exc.reason}",
                )
            if not (answer.status and answer.status.allowed):
                denied.append(f"{verb} {resource}" + (f".{group}" if group else ""))
    finally:
        api.close()  # type: ignore[no-untyped-call]
    if denied:
        return Check(
            "fail",
            "kubernetes",
            f"{host} ({version}): RBAC denies {', '.join(denied)} "
            f"(see deploy/base/security/rbac.yaml)",
        )
    return Check(
        "ok", "kubernetes", f"{host} ({version}): all {len(needs)} RBAC verbs triage uses allowed"
    )


async def check_kubernetes(settings: Settings) -> Check:
    cfg = settings.kubernetes
    if not (cfg.kubeconfig or cfg.in_cluster):
        return Check("off", "kubernetes", f"set {KUBE_ENV}")
    try:
        return await asyncio.to_thread(_kube_sync, settings, rbac_needs())
    except TriageError as exc:
        return Check("fail", "kubernetes", str(exc))
    except urllib3.exceptions.HTTPError as exc:
        return Check("fail", "kubernetes", f"unreachable: {describe(exc)}")
    except Exception as exc:  # the client raises its own errors too: one line each
        return Check("fail", "kubernetes", describe(exc))
