"""bcrypt for the Auth stand-in, always off the event loop.

A bcrypt hash at GoTrue's default cost takes tens of milliseconds of pure CPU; run inline it
would stall every other request the stack is serving, so both directions run in a worker thread.
The `bcrypt` library is used (not pgcrypto, which the pgserver build lacks).
"""

from __future__ import annotations

import anyio
import bcrypt

BCRYPT_ROUNDS = 10  # GoTrue's bcrypt.DefaultCost


async def hash_password(password: str) -> str:
    def _hash() -> str:
        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode()

    return await anyio.to_thread.run_sync(_hash)


async def password_matches(password: str, encrypted: str | None) -> bool:
    """True when `password` hashes to `encrypted`; False for an empty or foreign hash."""
    if not encrypted:
        return False

    def _check() -> bool:
        try:
            return bcrypt.checkpw(password.encode(), encrypted.encode())
        except ValueError:  # not a bcrypt hash, or a password past bcrypt's 72 bytes
            return False

    return await anyio.to_thread.run_sync(_check)


# A bcrypt hash (cost 10) of a random password nobody knows: the compare for unknown emails.
_DUMMY_HASH = "$2b$10$3Lvq6/slBTltvN3yCaj3ZObsg7lynRrgZyqaWAtpw9iiKNHVIh0BO"


async def spend_dummy_compare(password: str) -> None:
    """Spend the time of one bcrypt compare against a hash that matches nothing."""
    await password_matches(password, _DUMMY_HASH)
