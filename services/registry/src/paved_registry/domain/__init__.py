"""Pure domain logic of the registry: the lifecycle state machine and registration rules."""
