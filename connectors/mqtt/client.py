"""A paho-mqtt client made from a broker URL, a credential and TLS files."""

from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt


def make_client(broker: str, client_id: str, *, username: str | None = None,
                password: str | None = None, ca_file: Path | None = None,
                cert_file: Path | None = None, key_file: Path | None = None,
                protocol=mqtt.MQTTv311, clean: bool = True,
                manual_ack: bool = False) -> tuple[mqtt.Client, str, int]:
    """The client (not connected) and the host and port to connect to."""
    u = urlsplit(broker)
    tls = u.scheme == "mqtts"
    if protocol == mqtt.MQTTv5:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol,
                        manual_ack=manual_ack, reconnect_on_failure=False)
    else:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                        clean_session=clean, protocol=protocol, manual_ack=manual_ack,
                        reconnect_on_failure=False)
    if tls:
        c.tls_set(ca_certs=str(ca_file) if ca_file else None,
                  certfile=str(cert_file) if cert_file else None,
                  keyfile=str(key_file) if key_file else None,
                  cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    if username:
        c.username_pw_set(username, password)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    return c, u.hostname or "127.0.0.1", u.port or (8883 if tls else 1883)
