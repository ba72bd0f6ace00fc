"""Files on disk and streamed slide files: the SDK's only file I/O, kept out of the protocol core.

* :mod:`.files`: safe names, atomic writes (:class:`FileSink`), :class:`Download` (a slide's files
  decoded from one answer and written as they arrive), :class:`Progress` reports.
* :mod:`.streaming`: the same slide files as a stream of events, for apps that send them elsewhere.
* :mod:`.progressbar`: a terminal progress bar fed by :class:`Progress` reports.

The transports push bytes in (the trio and urllib3 clients share this code), so nothing here opens
a socket or imports a transport; and no protocol module (:mod:`sectra_core.flows`,
:mod:`~sectra_core.operations`, :mod:`~sectra_core.endpoints`, ...) imports this package.
"""
