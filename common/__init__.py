"""The bottom layer: helpers that several packages share (clock, hashing, safe redirects, metric
objects, outbound address policy). It imports nothing of the bridge's packages above it."""
