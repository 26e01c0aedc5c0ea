"""Kubernetes: what changed (rollouts, config), what is failing (pod states, events), and where
(nodes, autoscalers), for the workloads around the alert. Read-only.

One module per evidence family; ``common`` holds what they (and the logs collectors) share."""

from __future__ import annotations

from collectors.kubernetes.collector import KubernetesCollector

__all__ = ["KubernetesCollector"]
