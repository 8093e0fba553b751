"""The `aws` target: artifacts in S3 (aioboto3), model servers on EKS (kubernetes-asyncio).

SageMaker endpoints were considered and not chosen (ADR 0009): the same Kubernetes
manifests then serve both clouds, canaries and rollbacks behave alike, and the
model server is Paved's own on every target.
"""

from __future__ import annotations

from paved_deployer.adapters.kubernetes import KubernetesTarget


class AwsTarget(KubernetesTarget):
    """EKS + S3."""

    name = "aws"
    scheme = "s3"
