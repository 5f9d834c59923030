"""Sessions: create (LiveKit and Pipecat relay), get, list, end, and the relay socket."""
