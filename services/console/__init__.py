"""The back-office console: the web app compliance officers and operators work in.

It owns no business data. Every page calls the three services' public APIs with the signed-in
person's own staff token, so scopes, four-eyes checks and audit entries stay where they are.
"""
