"""The Pipecat relay transport: media records over the NATS media channel."""
