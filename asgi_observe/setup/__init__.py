"""Setup: `configure()`, settings, exporters, flush, the lifespan layer and health probes."""
