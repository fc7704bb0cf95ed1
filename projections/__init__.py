"""Projector workers that fold the event log into call records, presence and commands."""
