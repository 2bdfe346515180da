"""Hirfa's common library: what every service builds on (config, db, auth, errors, money, events)."""
