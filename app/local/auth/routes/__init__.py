"""The Auth stand-in's own routes, one module per job: `signup` (and anonymous sign-up), `token`
(the grants), `user` (`/user`, `/logout`), `meta` (JWKS, OpenID configuration, settings, health).
The email flows, the admin API and the disabled features have modules of their own one level up.
"""
