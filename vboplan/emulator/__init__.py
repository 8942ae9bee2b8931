"""The emulated Veeam Backup for Microsoft 365 REST server (API v5-v8) behind vboplan's tests and ``emulator:<name>``.

``Emulator`` is the WSGI application, ``Store`` its data (a YAML/JSON file or memory), ``start``/``serve`` run it
over HTTP(S), ``generate_tenant`` makes large seed data.
"""

from vboplan.emulator.app import DROP, Emulator
from vboplan.emulator.server import RunningServer, serve, start
from vboplan.emulator.store import Store, StoreError
from vboplan.emulator.synth import generate_tenant
from vboplan.emulator.wire import ConnectionDropped

__all__ = ["DROP", "ConnectionDropped", "Emulator", "RunningServer", "Store", "StoreError", "generate_tenant",
           "serve", "start"]
