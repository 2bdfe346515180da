"""Simulators of Hirfa's outside partners, run as separate processes for tests and demos:
``sandbox.bank`` (the partner bank: account openings, transfers) and ``sandbox.m2t`` (the M2T card
and wallet gateway). ``sandbox.common`` holds what both share.

Nothing here is deployed to production; state lives in memory and is lost on restart.
"""
