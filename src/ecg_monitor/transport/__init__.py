"""How chunks reach workers and results reach subscribers: one small interface, two brokers.

``zmq`` (the default, one machine, no set-up) and ``nats`` (JetStream, across machines, with
partition failover). See :mod:`ecg_monitor.transport.base`.
"""
