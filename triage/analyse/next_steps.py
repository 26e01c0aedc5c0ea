"""What an on-call engineer checks first for each kind of fault, as commands they can paste;
``{c}`` is the suspect. The first step of a kind is what would confirm a leading suspect when
no cause is confident."""

from __future__ import annotations

NEXT_STEPS: dict[str, list[str]] = {
    "bad_rollout": [
        "Compare the blamed revision with the previous one: kubectl rollout history deploy/{c}",
        "Check whether the new pods fail where the old ones do not (logs, error rate by version)",
    ],
    "config_change": [
        "Diff the ConfigMaps {c} references before and after the change (kubectl get configmap"
        " -o yaml; metadata.managedFields says who changed it when)",
        "Check the logs of {c} for configuration errors since the change: kubectl logs deploy/{c}",
    ],
    "secret_change": [
        "Check that every Secret {c} references exists and has the keys it reads: "
        "kubectl describe pods -l app={c}",
        "Compare the Secret's last change with the onset (metadata.managedFields)",
    ],
    "resource_exhaustion": [
        "Inspect memory/CPU usage against limits: kubectl top pods -l app={c}",
        "Look for OOMKilled in the pods' last state: kubectl describe pods -l app={c}",
    ],
    "cpu_throttling": [
        "Compare CPU usage with the limit and the throttled share of CFS periods for {c}",
        "Check whether a rollout lowered its CPU limit: kubectl rollout history deploy/{c}",
    ],
    "probe_misconfiguration": [
        "Read the probe failures in the events: kubectl describe pods -l app={c}",
        "Compare the probes' path, port and timeouts with what the container serves",
    ],
    "crash_loop": [
        "Read the previous container's logs: kubectl logs --previous deploy/{c}",
        "Check recent events: kubectl get events --field-selector involvedObject.name={c}",
    ],
    "dependency_failure": [
        "Check {c} itself: kubectl get pods -l app={c} and its logs, then its callers' errors",
        "Confirm the callers' errors name {c} (connection refused, timeouts to its address)",
    ],
    "node_failure": [
        "Check the node's conditions and events: kubectl describe node {c}",
        "List what ran there: kubectl get pods -A --field-selector spec.nodeName={c}",
    ],
    "scheduling": [
        "Read why its pods wait: kubectl get events --field-selector reason=FailedScheduling",
        "Compare the pods' requests, node selectors and tolerations with the nodes' capacity "
        "and taints: kubectl describe pods -l app={c}",
    ],
    "capacity": [
        "Check the autoscaler: kubectl describe hpa {c} (current vs max replicas)",
        "Compare the traffic with the capacity at max replicas; raise maxReplicas or shed load",
    ],
    "certificate_expiry": [
        "Read the certificate's notAfter: kubectl get secret {c} -o jsonpath='{{.data.tls\\.crt}}'"
        " | base64 -d | openssl x509 -noout -enddate",
        "Check the issuer's renewals (cert-manager: kubectl get certificate,certificaterequest)",
    ],
    "dns_failure": [
        "Check the cluster DNS: kubectl -n kube-system get pods -l k8s-app=kube-dns and its logs",
        "Resolve the failing names from a pod: kubectl exec deploy/{c} -- nslookup <name>",
    ],
    "network_policy": [
        "List the policies that select {c} and when they changed: kubectl get networkpolicy -o "
        "yaml",
        "Check that the callers' namespaces and labels match the policy's ingress rules",
    ],
    "network": [
        "Compare every caller's latency to {c} with {c}'s own server-side latency",
        "Check the network of {c}'s pods and nodes (packet loss, retransmits, chaos experiments)",
    ],
    "quota": [
        "Compare used with hard: kubectl describe resourcequota,limitrange -n <namespace>",
        "Read the refused creations: kubectl get events --field-selector reason=FailedCreate",
    ],
    "storage": [
        "Check the claims and their events: kubectl describe pvc -l app={c}",
        "Look for FailedMount / FailedAttachVolume: kubectl describe pods -l app={c}",
    ],
    "routing": [
        "Check that the Service selects ready pods on the right port: kubectl get endpointslices"
        " -l kubernetes.io/service-name={c}",
        "Check the route's backends: kubectl describe ingress,httproute {c}",
    ],
    "control_plane": [
        "Check the component's pods and leader lease: kubectl -n kube-system get pods,lease | "
        "grep {c}",
        "Read its logs: kubectl -n kube-system logs -l component={c} --tail=100",
    ],
}
DEFAULT_STEPS = [
    "Open the alert's graph around the onset and compare with the baseline",
    "Check recent changes to {c} and its dependencies (rollouts, config, scaling)",
]
