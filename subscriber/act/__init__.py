"""Act: drive relocations through a durable Temporal workflow, an orchestrator and PowerDNS."""
