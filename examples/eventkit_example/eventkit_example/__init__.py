"""Example third-party eventkit plugin: the two-moons dataset as spike latencies."""
