"""The `gcp` target: artifacts in GCS (gcloud-aio-storage), model servers on GKE."""

from __future__ import annotations

from paved_deployer.adapters.kubernetes import KubernetesTarget


class GcpTarget(KubernetesTarget):
    """GKE + GCS."""

    name = "gcp"
    scheme = "gs"
