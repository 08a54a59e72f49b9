"""Orchestration: load, refresh, plan and apply, wiring spec, providers, plan and state.

Nothing here prints or exits; the CLI renders what these functions return.
"""
