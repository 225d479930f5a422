"""Send: bounded, retrying upserts through the API.

setup.py     the run's sender, built from the job's [api] table
sender.py    workers, retries, stopping
answers.py   what an answer means (the one place that decides), and a record's outcome
flow.py      how fast: rate pacing, rate discovery on 429, the circuit breaker
client.py    httpx requests over the chosen transport
stats.py     requests, retries, latency
timeline.py  requests and latency over the run, sampled once a second (report.html)
"""
