"""MQTT between a centre's BEMS and the city portfolio (paho-mqtt): `client` connects with the
site's credential over TLS, `publisher` drains the outbox in order with QoS 1."""
