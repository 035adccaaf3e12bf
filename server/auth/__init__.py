"""Staff accounts, passwords, TOTP, recovery codes, enrolment, login throttling and sessions.

Layer 3: imports the store protocols, config, clock, errors and audit; never aiohttp.
"""
