"""Data sources: Prometheus, Tempo, Loki and OTLP files, each returning pandas DataFrames.

Endpoints and credentials come from the environment (:mod:`obslib.sources.endpoint`).
"""
