"""A local server implementing the customer API, for the demo, end-to-end tests and benchmarks.

``cli`` runs it, ``app`` holds the routes, ``storage`` the SQLite store, ``faults`` the trouble
it can rehearse, and ``testing`` a helper that runs it in a subprocess for tests.
"""
