"""The Auth stand-in's own routes, one module per job: `signup` (and anonymous sign-up), `token`
(the grants), `user` (`/user`, `/logout`), `meta` (JWKS, OpenID configuration, settings, health),
`passkeys` (WebAuthn sign-in and its management).
The email flows, the admin API and the disabled features have modules of their own one level up.
"""
