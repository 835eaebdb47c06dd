"""Authentication and authorization: accounts, keys, tokens, sessions (docs/security.md).

The modules here are free of the web framework (tests/test_layering.py); the HTTP side
(the middleware, the login page, the admin routes) is in koban.api.auth and
koban.api.admin.
"""
