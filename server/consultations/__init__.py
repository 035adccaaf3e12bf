"""Consultations, one-time patient invites, participant sessions, room tokens and the waiting room."""
