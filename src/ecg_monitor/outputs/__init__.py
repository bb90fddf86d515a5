"""Where results end up besides the views: the headless console, the bedside alarm log (both on
the ``listener`` receive loop) and the ward alarm log (a durable NATS consumer)."""
