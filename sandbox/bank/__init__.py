"""A bank-partner sandbox: a Flask process that answers and calls back the way a partner bank does.

One module per bank resource (``account_openings``, and ``transfers`` for payouts); they share
the configuration, the API-key check, the JSON errors and the signed callback sender.
"""
