"""From options to a finished run: plan (every check, before anything is written), then execute."""
