"""The composition root: each process wired once, from settings to a graceful stop.

Every process follows one shape: settings → clients → services → run until signalled. Its
adapters are async context managers entered in dependency order on one ``AsyncExitStack`` and
closed in reverse; :func:`subscriber.app.lifecycle.run_until_stopped` runs the service until a
stop event is set (by SIGTERM or SIGINT in a real process, by the caller in tests), and
:func:`subscriber.app.lifecycle.running` runs it in the background of a ``with`` block for the
demo, the benchmarks and the tests.

* :mod:`.receiver`: ``subscriber serve`` under granian, and the receiver in-process;
* :mod:`.tracker`: ``subscriber track``, subscriptions and the poller;
* :mod:`.consumer`: ``subscriber consume``, decisions and relocation signals;
* :mod:`.worker`: ``subscriber worker``, the Temporal relocation worker.

Only this package installs signal handlers, and only it picks an orchestrator by setting
(including the local one from :mod:`subscriber.fakes`).
"""
