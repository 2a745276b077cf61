//! Ferry bridge: relays WebSocket requests to AMQP queues and routes replies back.
