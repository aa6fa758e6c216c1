"""Running flows on this machine: scenarios, the sandbox simulation, LocalRun, flow tests, the sandbox HTTP server."""
