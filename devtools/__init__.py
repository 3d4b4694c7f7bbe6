"""Helpers the tests and the benchmarks share (not part of the product, not installed): free
ports on loopback, real PostgreSQL and Mosquitto started and stopped here, network
namespaces for field networks."""
