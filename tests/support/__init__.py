"""What the tests share: helpers for real services, events, processes, ports and waiting.

Fixtures stay in the conftest.py files; everything a test module imports from another place in
tests/ comes from here, so no test module reaches into another one's private helpers.

* :mod:`.kafka`: topics, producing and reading records, committed offsets;
* :mod:`.events`, :mod:`.policy`, :mod:`.scenario`, :mod:`.journeys`: events and policy inputs;
* :mod:`.relocation`: relocation requests, a running worker and fault-injecting wrappers;
* :mod:`.processes`, :mod:`.callbacks`, :mod:`.registry`: ``subscriber`` processes and their input;
* :mod:`.settings`, :mod:`.ports`, :mod:`.waiting`: isolation, free ports, polling;
* :mod:`.h2raw`, :mod:`.problems`, :mod:`.log_scan`: the hostile-input and log-scan tools.
"""
