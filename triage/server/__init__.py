"""The gRPC transport: servicer, status mapping, access log and server wiring."""
