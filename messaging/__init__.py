"""What MMS and the outside world exchange over Kafka: topic names (and the
namespace that lets several stacks share one broker). The worker, the outbox
relay, the apps and the simulator all take their topic names from here."""
