"""The domain the use case and the adapters share: value types, ports, prices."""
