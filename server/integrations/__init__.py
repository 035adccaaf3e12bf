"""Integrations (layer 3): scoped API keys for booking and patient-record systems, the event
sink the consultation and recording services emit into, the webhook outbox and its signing."""
