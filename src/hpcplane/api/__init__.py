"""Transport: HTTP, the RPC envelope, signatures and dispatch; never SQL."""
