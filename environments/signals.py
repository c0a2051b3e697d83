"""Signals the environments app sends, for the layers above it to act on without environments importing them."""

from django.dispatch import Signal

# Sent inside the transaction that records a deployment as succeeded, whoever made it: the portal's own deployer
# or Jenkins' deployment callback. Arguments: deployment (with its environment and source run). Receivers run in
# that transaction, so what they write stands or falls with the success; they must be idempotent.
deployment_succeeded = Signal()
