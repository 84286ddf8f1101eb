"""Adapters between the quoting core and the world: Kafka, the Order Service,
the Metadata Service, the ORM and Redis. The core never imports these."""
