"""Simulators of Hirfa's outside partners (banks now), run as separate processes for tests and demos.

Nothing here is deployed to production; state lives in memory and is lost on restart.
"""
