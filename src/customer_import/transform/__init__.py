"""Map and validate: source batches -> request bodies, rejects with reasons, repeated ids held.

mapping.py      pure: source columns -> target fields (Polars expressions)
validation.py   pure: mapped rows -> valid bodies or reasons (normalise.py, fastpath.py)
duplicates.py   repeated externalIds: found in a pre-pass, decided once all is read
prepare.py      one batch through all of it, on worker threads (threads.py)
guard.py        stop before sending when the first records are mostly invalid
sharding.py     which records belong to shard K of N
quality.py, fieldstats.py   what is worth a warning, and ``check``'s per-field counts
"""
