"""Generated protobuf and gRPC modules of the rtvoice.v1 contract (``scripts/gen_proto.sh``)."""
