"""Tests of the deployment files: images, the Compose stack and the Kubernetes manifests."""
