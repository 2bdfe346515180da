"""What every partner sandbox shares: settings from the environment, the partner-shaped JSON errors,
the API-key check and the signed callback sender. Each sandbox binds them to its partner's names
(its env prefix, its signature header, its error codes).
"""
