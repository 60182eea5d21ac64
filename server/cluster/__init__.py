"""``sluice serve --frontends N``: N front-end processes (HTTP, parsing) share the port with
``SO_REUSEPORT`` and forward the protocol-free service calls to one engine process (registry,
batchers, engines) over ZeroMQ; a supervisor process starts, restarts and stops them.

``messages``: what crosses the boundary; ``engine``: the engine process; ``client`` and
``remote``: the front end's side (the service and registry the HTTP layer is built with);
``frontend``: the front-end process (``sockets``: the shared port); ``supervisor``: the parent;
``metrics_merge``: /metrics summed over processes; ``mode``: ``auto``.
"""
