"""`python -m launch.local`: the local supervisor that runs N workers of one multi-worker job."""
