"""Per-task batch handlers: turn a batch of request payloads into engine inputs and back."""
