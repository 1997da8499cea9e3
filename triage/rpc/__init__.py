"""The gRPC transport: servicer, proto conversion, status mapping, interceptors, server wiring."""
