"""``python -m infra.connector``: the RabbitMQ connector (``infra.connector.trigger``)."""

from infra.connector.trigger import main

main()
