"""Analysis of built and simulated networks: firing rates and figures (core only, no simulator)."""
