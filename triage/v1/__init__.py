"""Generated gRPC/protobuf code for protos/triage/v1 (``make proto``); never edit by hand."""
