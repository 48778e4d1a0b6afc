"""Running: requests, the compile cache, results, the harness, the outcome policy, scenario runs."""
