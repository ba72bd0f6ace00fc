"""The analysis-app toolkit's I/O half: serving an app and running its work.

* :mod:`.server`: the Quart blueprint and :class:`AppServer` / :func:`create_app` (needs the ``app`` extra).
* :mod:`.contexts`: what a handler receives (:class:`AsyncInvocationContext`, :class:`InvocationContext`).
* :mod:`.runners`: background jobs (:class:`AsyncJob`, :class:`SyncJob`) and where they run
  (:class:`TrioJobRunner`, :class:`ExecutorJobRunner`).
* :mod:`.transactions`: drivers that send a core call flow's operations through a client.
* :mod:`.asgi`: hypercorn on trio, for an app or the mock.
* :mod:`.queue`: jobs on ``sectra worker`` processes through a durable queue (``queue`` extra).

Contexts, jobs and drivers are written once for trio (``_async_app.py``); ``_sync_app.py`` is
generated from it by ``scripts/unasync.py``. The pure half is :mod:`sectra_core.app`. Nothing is
imported here, so ``import sectra_transports.app.contexts`` does not pull in Quart.
"""
