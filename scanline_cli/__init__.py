"""``scanline``: the command line for Scanline, on its public HTTP contract alone.

It is a client like any other: it talks to the gateway (``--gateway`` or
``SCANLINE_GATEWAY``) and never to the database, the broker or the mail folder, so what it
can do any user can do with curl, and what it cannot, they cannot either.
"""
